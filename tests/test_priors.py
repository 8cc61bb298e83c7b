"""Priors are data: validated, merged (named beats default, call beats spec), rescaled exactly, never mutated."""

import copy

import pytest

import bayescrt as bc
from bayescrt.priors import DEFAULT_PRIOR, rescale, resolve_priors, validate_prior


@pytest.mark.parametrize("prior,pattern", [
    ({"dist": "Normall", "sigma": 1}, r"dist='Normall' is not supported\. Did you mean 'Normal'\?"),
    ({"dist": "Normal"}, r"Normal needs 'sigma'"),
    ({"dist": "Normal", "sigma": -1}, r"sigma=-1\.0 must be > 0"),
    ({"dist": "Normal", "sigma": 1, "sd": 2}, r"unknown key 'sd' for Normal"),
    ({"dist": "StudentT", "sigma": 1}, r"StudentT needs 'nu'"),
    ({"dist": "Normal", "sigma": 1, "scale": "log"}, r"scale='log' is not valid"),
    ({"dist": "Normal", "sigma": float("nan")}, r"sigma=nan must be a finite number"),
    ("Normal(0,1)", r"must be a dict like"),
])
def test_bad_priors_are_rejected_with_the_fix(prior, pattern):
    with pytest.raises(bc.SpecError, match=pattern):
        validate_prior(prior, "'x'")


def test_unknown_covariate_in_priors_suggests_the_nearest():
    with pytest.raises(bc.SpecError, match=r"'agee' is not a covariate\. Did you mean 'age'\?"):
        resolve_priors(("age",), ("age",), [1.0], {"agee": {"dist": "Normal", "sigma": 1}})


def test_merge_order_and_no_mutation():
    call = {"age": {"dist": "Normal", "mu": 0.1, "sigma": 0.05}}
    spec = {"age": {"dist": "Normal", "sigma": 9.0}, "male": {"dist": "Cauchy", "sigma": 1.0},
            "default": {"dist": "Normal", "sigma": 1.0}}
    call0, spec0, default0 = copy.deepcopy(call), copy.deepcopy(spec), copy.deepcopy(DEFAULT_PRIOR)
    out = resolve_priors(("age", "male", "af"), ("age", "male", "af"), [10.0, 0.5, 0.4], call, spec)
    assert out[0]["given"]["sigma"] == 0.05  # the call beats the spec
    assert out[1]["given"]["dist"] == "Cauchy"  # the spec beats the default
    assert out[2]["given"] == {"dist": "Normal", "mu": 0.0, "sigma": 1.0, "scale": "original"}
    assert (call, spec, DEFAULT_PRIOR) == (call0, spec0, default0)


def test_call_column_prior_beats_spec_label_prior_and_named_beats_default():
    labels, cols = ("nyha[III vs II]", "nyha[IV vs II]", "age"), ("nyha", "nyha", "age")
    call = {"nyha": {"dist": "Normal", "sigma": 1.0}, "default": {"dist": "Normal", "sigma": 3.0}}
    spec = {"nyha[III vs II]": {"dist": "Normal", "sigma": 7.0}, "age": {"dist": "Normal", "sigma": 0.1}}
    out = resolve_priors(labels, cols, [0.5, 0.4, 10.0], call, spec)
    assert [o["given"]["sigma"] for o in out] == [1.0, 1.0, 0.1]
    with pytest.raises(bc.SpecError, match=r"spec priors: 'nyh' is not a covariate\. Did you mean 'nyha'\?"):
        resolve_priors(labels, cols, [0.5, 0.4, 10.0], None, {"nyh": {"dist": "Normal", "sigma": 1.0}})


def test_prior_on_a_source_column_applies_to_its_indicators():
    out = resolve_priors(("nyha[III vs II]", "nyha[IV vs II]"), ("nyha", "nyha"), [0.5, 0.4],
                         {"nyha": {"dist": "Normal", "sigma": 1.0}})
    assert [o["given"]["sigma"] for o in out] == [1.0, 1.0]


def test_rescaling_between_units_and_sds_is_exact():
    p = validate_prior({"dist": "StudentT", "nu": 3, "mu": 0.1, "sigma": 0.2}, "x")
    std = rescale(p, 8.0, "standardised")
    assert (std["mu"], std["sigma"], std["nu"]) == (0.8, 1.6, 3.0)
    back = rescale(std, 8.0, "original")
    assert back["mu"] == pytest.approx(0.1) and back["sigma"] == pytest.approx(0.2)
