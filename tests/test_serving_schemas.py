"""Unit tests of the request schemas: what is a valid Iris request, and what is not."""

import math

import pytest
from pydantic import ValidationError

from mlapi.serving.errors import field_path, validation_error
from mlapi.serving.schemas import FLOAT32_MAX, iris_request_model

IrisRequest = iris_request_model(max_batch=3)
SETOSA = [5.1, 3.5, 1.4, 0.2]


@pytest.mark.parametrize(
    "body",
    [
        {"features": SETOSA},
        {"features": [5, 3, 1, 0]},  # integers are real numbers too
        {"features": [-FLOAT32_MAX, 0.0, FLOAT32_MAX, 1e-30]},
        {"instances": [SETOSA]},
        {"instances": [SETOSA] * 3},
    ],
)
def test_valid_requests(body):
    payload = IrisRequest.model_validate(body)
    rows = [payload.features] if payload.features is not None else payload.instances
    expected = [body["features"]] if "features" in body else body["instances"]
    assert rows == [[float(x) for x in row] for row in expected]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"features": [5.1, 3.5, 1.4]}, "features"),
        ({"features": [5.1, 3.5, 1.4, 0.2, 9.9]}, "features"),
        ({"features": "5.1,3.5,1.4,0.2"}, "features"),
        ({"features": {"a": 1}}, "features"),
        ({"features": [True, 3.5, 1.4, 0.2]}, "features[0]"),
        ({"features": [5.1, "3.5", 1.4, 0.2]}, "features[1]"),
        ({"features": [5.1, 3.5, None, 0.2]}, "features[2]"),
        ({"features": [5.1, 3.5, 1.4, [0.2]]}, "features[3]"),
        ({"features": [math.nan, 3.5, 1.4, 0.2]}, "features[0]"),
        ({"features": [5.1, math.inf, 1.4, 0.2]}, "features[1]"),
        ({"features": [5.1, 3.5, -math.inf, 0.2]}, "features[2]"),
        ({"features": [5.1, 3.5, 1.4, 1e39]}, "features[3]"),
        ({"features": [5.1, 3.5, 1.4, -1e39]}, "features[3]"),
        ({"features": [5.1, 3.5, 1.4, 10**400]}, "features[3]"),
        ({"instances": []}, "instances"),
        ({"instances": [SETOSA] * 4}, "instances"),
        ({"instances": [SETOSA, [1, 2, 3]]}, "instances[1]"),
        ({"instances": [SETOSA, [1, 2, "x", 4]]}, "instances[1][2]"),
        ({"features": SETOSA, "extra": 1}, "extra"),
    ],
)
def test_invalid_requests_point_at_the_field(body, field):
    with pytest.raises(ValidationError) as info:
        IrisRequest.model_validate(body)
    error = validation_error(info.value, list(IrisRequest.model_fields))
    assert error.status == 400
    assert error.field == field
    assert error.message.startswith(field)


@pytest.mark.parametrize("body", [{}, {"features": SETOSA, "instances": [SETOSA]}])
def test_exactly_one_of_features_or_instances(body):
    with pytest.raises(ValidationError) as info:
        IrisRequest.model_validate(body)
    error = validation_error(info.value, list(IrisRequest.model_fields))
    assert error.field is None
    assert "exactly one of 'features'" in error.message


def test_messages_are_readable():
    with pytest.raises(ValidationError) as info:
        IrisRequest.model_validate({"features": [5.1, True, math.nan, 1e39]})
    message = validation_error(info.value, list(IrisRequest.model_fields)).message
    assert "features[1]: must be a number (not a string, boolean, null or list)" in message
    assert "features[2]: must be a finite number" in message
    assert "features[3]: must be a number <= 3.402823e+38" in message


def test_field_path_formats_nested_locations():
    assert field_path(("instances", 3, 1)) == "instances[3][1]"
    assert field_path(("a", "b")) == "a.b"
    assert field_path(()) == ""
