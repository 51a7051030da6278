"""Helpers shared by the API tests: example inputs and the error-shape assertion."""

import json

SETOSA = [5.1, 3.5, 1.4, 0.2]
VIRGINICA = [6.7, 3.0, 5.2, 2.3]
CLASSES = ["setosa", "versicolor", "virginica"]


def post(client, body, content_type="application/json", path="/predict"):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return client.post(path, data=data, content_type=content_type)


def assert_error(response, status, *, field=None, contains=""):
    assert response.status_code == status
    assert response.is_json
    error = response.get_json()["error"]
    assert error["status"] == status
    assert contains in error["message"]
    assert error.get("field") == field
    assert error["request_id"] == response.headers["X-Request-ID"]
    return error
