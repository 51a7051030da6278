"""Request and response schemas (pydantic v2). The OpenAPI document is generated from them.

Request models are built per app by small factories because their limits (batch
size, text length) come from the serving settings: the document then states the
limits the running server really enforces.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict, model_validator

FLOAT32_MAX = 3.4028234663852886e38

# A real number that survives the trip to float32: booleans, numeric strings, null,
# lists, NaN, Infinity and out-of-range values are all rejected.
FiniteFloat32 = Annotated[
    float, Strict(), Field(allow_inf_nan=False, ge=-FLOAT32_MAX, le=FLOAT32_MAX)
]
IRIS_FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")


def _four_features(row: list[float]) -> list[float]:
    if len(row) != len(IRIS_FEATURES):
        raise ValueError(
            f"must have exactly {len(IRIS_FEATURES)} numbers ({', '.join(IRIS_FEATURES)}), "
            f"got {len(row)}"
        )
    return row


IrisRow = Annotated[
    list[FiniteFloat32],
    AfterValidator(_four_features),
    Field(
        description=f"{', '.join(IRIS_FEATURES)} (cm)",
        examples=[[5.1, 3.5, 1.4, 0.2]],
        json_schema_extra={"minItems": len(IRIS_FEATURES), "maxItems": len(IRIS_FEATURES)},
    ),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _one_of_schema(single: str, batch: str) -> ConfigDict:
    """Say in the JSON schema what `_exactly_one` enforces."""
    return ConfigDict(
        extra="forbid",
        json_schema_extra={"oneOf": [{"required": [single]}, {"required": [batch]}]},
    )


def _exactly_one(model: BaseModel, single: str, batch: str) -> None:
    given = [name for name in (single, batch) if getattr(model, name) is not None]
    if len(given) != 1:
        raise ValueError(
            f"send exactly one of '{single}' (one example) or '{batch}' (a list of examples)"
        )


def iris_request_model(max_batch: int) -> type[BaseModel]:
    class IrisPredictRequest(BaseModel):
        """Either `features` (one flower) or `instances` (a batch)."""

        model_config = _one_of_schema("features", "instances")
        # Absent means None; an explicit null is rejected like any other non-list.
        features: IrisRow = None
        instances: Annotated[list[IrisRow], Field(min_length=1, max_length=max_batch)] = None

        @model_validator(mode="after")
        def _one_of(self):
            _exactly_one(self, "features", "instances")
            return self

    return IrisPredictRequest


# Whitespace as JSON Schema (ECMAScript) regexes see it, written out so that Python's `re`
# and the published schema agree exactly on what "only whitespace" means.
WHITESPACE = r"\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
NOT_BLANK = f"[^{WHITESPACE}]"
_NOT_BLANK = re.compile(NOT_BLANK)


def sentiment_text_type(max_chars: int):
    """A review: a string with at least one non-space character and at most `max_chars`."""

    def check(text: str) -> str:
        if not _NOT_BLANK.search(text):
            raise ValueError("must not be empty or only whitespace")
        if len(text) > max_chars:
            raise ValueError(f"must have at most {max_chars} characters, got {len(text)}")
        return text

    return Annotated[
        str,
        Strict(),
        AfterValidator(check),
        Field(
            description="A movie review in English",
            examples=["A wonderful, moving film with a brilliant cast."],
            json_schema_extra={"minLength": 1, "maxLength": max_chars, "pattern": NOT_BLANK},
        ),
    ]


def check_total_chars(texts: list[str] | None, max_total_chars: int | None) -> None:
    """All the texts of one request together: what tokenizing them costs in memory."""
    total = sum(map(len, texts or ()))
    if max_total_chars is not None and total > max_total_chars:
        raise ValueError(
            f"the texts add up to {total:,} characters, more than the {max_total_chars:,} "
            "allowed in one request; send them in several requests"
        )


def sentiment_request_model(
    max_batch: int, max_chars: int, max_total_chars: int | None = None
) -> type[BaseModel]:
    Text = sentiment_text_type(max_chars)

    class SentimentRequest(BaseModel):
        """Either `text` (one review) or `texts` (a batch)."""

        model_config = _one_of_schema("text", "texts")
        text: Text = None
        texts: Annotated[list[Text], Field(min_length=1, max_length=max_batch)] = None

        @model_validator(mode="after")
        def _one_of(self):
            _exactly_one(self, "text", "texts")
            check_total_chars(self.texts, max_total_chars)
            return self

    return SentimentRequest


def v1_request_model(
    item_type, max_batch: int, title: str, max_total_chars: int | None = None
) -> type[BaseModel]:
    """KServe V1 / TensorFlow Serving REST: {"instances": [...]}."""

    class V1PredictRequest(_Strict):
        instances: Annotated[list[item_type], Field(min_length=1, max_length=max_batch)]

        @model_validator(mode="after")
        def _budget(self):
            if max_total_chars is not None:
                check_total_chars(self.instances, max_total_chars)
            return self

    V1PredictRequest.__name__ = V1PredictRequest.__qualname__ = title
    V1PredictRequest.model_config["title"] = title
    return V1PredictRequest


class IrisPrediction(BaseModel):
    prediction: str = Field(examples=["setosa"])
    probabilities: dict[str, float] = Field(
        examples=[{"setosa": 1.0, "versicolor": 0.0, "virginica": 0.0}]
    )


class IrisBatchPrediction(BaseModel):
    predictions: list[IrisPrediction]


class SentimentPrediction(BaseModel):
    label: Literal["negative", "positive"]
    score: float = Field(description="P(positive)", ge=0, le=1)
    probabilities: dict[Literal["negative", "positive"], float]


class SentimentBatchPrediction(BaseModel):
    predictions: list[SentimentPrediction]


class V1IrisResponse(BaseModel):
    predictions: list[IrisPrediction]


class V1SentimentResponse(BaseModel):
    predictions: list[SentimentPrediction]


class V1ModelStatus(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    ready: bool


class ErrorDetail(BaseModel):
    status: int
    message: str
    field: str | None = None
    request_id: str


class ErrorResponse(BaseModel):
    error: ErrorDetail


class Health(BaseModel):
    status: Literal["ok"]


class ModelInfo(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    loaded: bool
    problem: str | None = None


class ModelsResponse(BaseModel):
    models: list[ModelInfo]
