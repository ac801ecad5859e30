"""paper_settings: the paper's training setup as parameters of the CEBM estimators."""

from sklearn_cebm import (
    CEBMEncoder,
    CEBMOutlierDetector,
    GMMCEBMClusterer,
    IGEBMEncoder,
    paper_settings,
)


def test_paper_settings_are_valid_parameters_of_every_cebm_estimator():
    settings = paper_settings()
    assert settings["sgld_steps"] == 60 and settings["max_iter"] * 469 >= 90_000
    for estimator in (CEBMEncoder, GMMCEBMClusterer, CEBMOutlierDetector, IGEBMEncoder):
        params = estimator(**settings, image_shape=(1, 28, 28)).get_params()
        assert {key: params[key] for key in settings} == settings
    settings["sgld_steps"] = 1
    assert paper_settings()["sgld_steps"] == 60
