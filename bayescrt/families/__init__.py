"""Model families: each module turns validated SurvivalData and priors into a PyMC model."""
