"""The JSON the API takes and gives, as pydantic models."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Query
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from syn2real.labels import IGNORE

#: SQLite integers are 64-bit: larger ids would be a 500 instead of a 404.
MAX_ID = 2**62
MAX_COORDINATE = 1 << 16

ANNOTATOR_PATTERN = r"^[A-Za-z0-9_.@-]{1,64}$"
AnnotatorName = Annotated[str, Field(pattern=ANNOTATOR_PATTERN)]
AnnotatorQuery = Annotated[str, Query(pattern=ANNOTATOR_PATTERN)]
ClassValue = Annotated[StrictInt, Field(ge=0, le=IGNORE)]
Coordinate = Annotated[StrictInt, Field(ge=0, lt=MAX_COORDINATE)]
#: One run of an answer's labels: [class, count], count >= 1 (a run covers at least one pixel).
Run = tuple[ClassValue, Annotated[StrictInt, Field(ge=1, le=MAX_COORDINATE**2)]]


def _runs_fit_the_box(value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo) -> Any:
    """Counts the runs before validating any of them: a box of w*h pixels takes at most w*h runs.

    The box comes from the validation context ({"max_runs": w*h} of the answer's request, or 0 when the
    answer names no valid request); without a context only the runs themselves are checked."""
    limit = (info.context or {}).get("max_runs")
    if isinstance(value, list) and limit is not None and len(value) > limit:
        if limit == 0:
            raise PydanticCustomError("too_many_runs", "labels are checked against their request's box: "
                                                       "send a valid request id")
        raise PydanticCustomError("too_many_runs", "{runs} runs for a box of {pixels} pixels: a box takes at most "
                                                   "one run per pixel", {"runs": len(value), "pixels": limit})
    return handler(value)


class AnnotatorIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    annotator: AnnotatorName


class AnswerIn(BaseModel):
    """One answer. A point takes `class`. A region takes `class` (all its pixels), `labels` (run-length
    [value, count] pairs over its box, row by row, 255 outside the region or where left open), or `corrections`
    ([x, y, class] in image pixels, each inside the region) over an optional `class`. `skipped` (unsure) takes
    none of them."""

    model_config = ConfigDict(extra="forbid")
    annotator: AnnotatorName
    image: str = Field(min_length=1, max_length=512)
    request: StrictInt = Field(ge=0, le=MAX_ID)
    class_id: ClassValue | None = Field(None, alias="class")
    labels: Annotated[list[Run], WrapValidator(_runs_fit_the_box)] | None = None
    corrections: list[tuple[Coordinate, Coordinate, ClassValue]] | None = None
    skipped: StrictBool = False
    seconds: float | None = Field(None, ge=0, le=86400, allow_inf_nan=False)

    @model_validator(mode="after")
    def one_kind_of_answer(self) -> AnswerIn:
        given = [name for name, value in (("class", self.class_id), ("labels", self.labels),
                                          ("corrections", self.corrections)) if value is not None]
        if self.skipped and given:
            raise ValueError(f"a skipped answer carries no {' or '.join(given)}")
        if self.labels is not None and len(given) > 1:
            raise ValueError("labels are a whole answer: send them without class or corrections")
        if not self.skipped and not given:
            raise ValueError("an answer needs class, labels or corrections (or skipped: true when unsure)")
        return self


class MetaOut(BaseModel):
    space: str | None
    classes: list[str]
    palette: list[tuple[int, int, int]]
    ignore: int
    lease_seconds: float


class NextOut(BaseModel):
    image: str | None


class GivenAnswerOut(BaseModel):
    """An answer as listed with its request: `class` for a point, `labels` (run lengths) for a region, neither
    when skipped."""

    model_config = ConfigDict(validate_by_name=True, serialize_by_alias=True)
    skipped: bool
    annotator: str
    source: str
    answered: float
    class_id: int | None = Field(None, alias="class")
    labels: list[tuple[int, int]] | None = None


class RequestOut(BaseModel):
    """A request of an image; `mask` (run lengths over the box) only for regions."""

    id: int
    round: int
    kind: Literal["point", "region"]
    x: int
    y: int
    width: int
    height: int
    pixels: int
    suggestion: int | None
    answer: GivenAnswerOut | None
    mask: list[tuple[int, int]] | None = None


class ImageRequestsOut(BaseModel):
    image: str
    width: int
    height: int
    prediction: bool
    prediction_problem: str | None
    requests: list[RequestOut]


class AnswerOut(BaseModel):
    request: int
    image: str
    annotator: str


class UndoOut(BaseModel):
    request: int
    image: str


class ProgressOut(BaseModel):
    """The store's progress counts; the `annotator` fields only when asked for one."""

    total: int
    answered: int
    skipped: int
    mean_seconds: float | None
    images: int
    open_images: int
    annotator: str | None = None
    mine: int | None = None
    my_mean_seconds: float | None = None


class ExportOut(BaseModel):
    folder: str
    answers: int
    masks: int
