"""Model-config handler sections are validated, and the image_url policy follows them."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import pytest
import yaml

from segserve.contract.errors import WeightsError
from segserve.settings import LlmSettings, ModelSettings, RouterSettings, ServingEnvironment

LOOPBACK = ipaddress.ip_address("127.0.0.1")


@pytest.mark.parametrize("model", ["langsam", "sam2", "sam3"])
def test_the_shipped_model_configs_are_valid(model):
    with open(f"serving/model-config/{model}.yaml") as config:
        ModelSettings.from_config(yaml.safe_load(config)["handler"])


def test_the_shipped_router_config_is_valid():
    with open("serving/model-config/router.yaml") as config:
        assert RouterSettings.from_config(yaml.safe_load(config)["handler"]).routes == {
            "langsam": "langsam", "sam2": "sam2", "sam3": "sam3"}


def test_the_models_queues_are_bounded_and_the_router_is_sized_by_the_entrypoint():
    """Overload must be refused by the models' bounded queues (503 overloaded + Retry-After, from a free router
    worker), never pile up in the router's own queue: the entrypoint sizes the router from these queues
    (tests/unit/test_container_scripts.py), so router.yaml must not fix a count of its own."""
    configs = {name: yaml.safe_load(Path(f"serving/model-config/{name}.yaml").read_text())
               for name in ("router", "langsam", "sam2", "sam3")}
    for model in RouterSettings.from_config(configs["router"]["handler"]).routes.values():
        assert 1 <= configs[model]["jobQueueSize"] <= 8, model  # bounded: the last request waits this many services
        assert configs[model]["minWorkers"] == configs[model]["maxWorkers"] == 1, model
    assert "minWorkers" not in configs["router"] and "maxWorkers" not in configs["router"]


@pytest.mark.parametrize("section", [{"box_treshold": 0.3}, {"box_threshold": 3}, {"max_detections": 0},
                                     {"llm": {"modle": "gpt-4o-mini"}}, {"llm": {"timeout_s": 0}},
                                     {"llm": {"max_retries": -1}}, {"llm": {"cooldown_s": -1}},
                                     {"refine_prompt": "sometimes"}])
def test_a_typo_or_bad_value_fails_the_start(section):
    with pytest.raises(WeightsError, match="model-config.yaml"):
        ModelSettings.from_config(section)


@pytest.mark.parametrize(
    "metadata", ["169.254.169.254", "::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe", "2002:a9fe:a9fe::1",
                 "fd00:ec2::254", "fe80::1"],
)
def test_private_image_urls_are_refused_by_default_and_metadata_always(metadata):
    strict = ServingEnvironment.from_env({}).image_loader().fetch_policy
    relaxed = ServingEnvironment.from_env({"SEGSERVE_ALLOW_PRIVATE_IMAGE_URLS": "true"}).image_loader().fetch_policy
    metadata = ipaddress.ip_address(metadata)
    assert not strict.allow_address(LOOPBACK) and not strict.allow_address(metadata)
    assert relaxed.allow_address(LOOPBACK) and relaxed.allow_address(ipaddress.ip_address("10.0.0.5"))
    assert not relaxed.allow_address(metadata)


def test_model_config_detection_defaults_fill_only_what_a_request_leaves_out():
    from segserve.contract.requests import parse_request
    from segserve.contract.requests import DetectionParams

    defaults = ModelSettings(box_threshold=0.5, max_detections=7, refine_prompt=True).detection_params()
    assert defaults == DetectionParams(box_threshold=0.5, text_threshold=0.25, max_detections=7, refine_prompt=True)
    request = parse_request({"action": "langsam", "image": "x", "text_prompt": "a", "max_detections": 3})
    assert request.detection_params(defaults) == DetectionParams(box_threshold=0.5, text_threshold=0.25,
                                                                 max_detections=3, refine_prompt=True)
    request = parse_request({"action": "langsam", "image": "x", "text_prompt": "a", "refine_prompt": False})
    assert request.detection_params(defaults).refine_prompt is False


def test_the_serving_environment_is_read_from_segserve_variables_and_validated():
    env = ServingEnvironment.from_env({"SEGSERVE_MAX_PIXELS": "1000", "SEGSERVE_MAX_RESPONSE_BYTES": "1000000",
                                       "SEGSERVE_ALLOW_PRIVATE_IMAGE_URLS": "true", "SEGSERVE_WORKERS_SAM2": "2"})
    assert env.max_pixels == 1000 and env.allow_private_image_urls is True
    assert env.answer_limit_bytes == 1_000_000 - 53_600  # room for TorchServe's framing below its limit
    assert env.image_loader().max_pixels == 1000
    assert ServingEnvironment.from_env({}).answer_limit_bytes == 6_500_000
    for name, value in (("SEGSERVE_MAX_PIXELS", "many"), ("SEGSERVE_FETCH_TIMEOUT_S", "0"),
                        ("SEGSERVE_ROUTER_TIMEOUT_S", "3")):
        with pytest.raises(WeightsError, match=name.removeprefix("SEGSERVE_").lower()):
            ServingEnvironment.from_env({name: value})


def test_every_setting_is_in_the_readmes_configuration_table():
    """One table for every environment variable and model-config key a deployment may set."""
    readme = Path("README.md").read_text()
    table = readme[readme.index("## Configuration"):]
    table = table[:table.index("\n## ", 3)]
    names = [f"SEGSERVE_{name.upper()}" for name in ServingEnvironment.model_fields]
    names += re.findall(r"^#   (SEGSERVE_[A-Z0-9_]+)", Path("serving/entrypoint.sh").read_text(), re.M)
    names += [f"`{name}`" for model in (ModelSettings, RouterSettings, LlmSettings) for name in model.model_fields]
    missing = [name for name in dict.fromkeys(names) if name not in table]
    assert not missing, f"not in README.md's Configuration table: {missing}"
