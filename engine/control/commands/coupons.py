"""Coupon commands (engine/features/coupons_node.py, docs/coupons.md): define, drop, schedule and
end coupon batches, read them, and choose the batch a share grants from."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import ConfigDict, Field

from engine.control.registry import Call, Command, Millis, NoParams, Params, Result, ShortText
from engine.errors import ErrorCode

if TYPE_CHECKING:
    from engine.node import Engine

BatchId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,48}$", description="a batch id")]
ProductId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:@-]{1,64}$", description="a product id")]
Kind = Literal["fixed", "threshold", "no_threshold", "percent"]
Amount = Annotated[int, Field(ge=1, le=10**12)]
Quantity = Annotated[int, Field(ge=1, le=10_000_000)]


class _More(Params):
    threshold: int | None = Field(None, ge=0, le=10**12, description="minimum order (minor units)")
    valid_until: Millis | None = Field(None, description="the coupons are valid until (ms)")
    valid_s: float | None = Field(
        None, ge=60, le=366 * 86400, description="or: valid this long (default 7 days)"
    )
    claim_s: float | None = Field(
        None, ge=1, le=7 * 86400, description="claims close this long after the drop (default: "
        "when the coupons stop being valid)"
    )  # fmt: skip
    title: ShortText | None = Field(None, description="what viewers see, e.g. 10 off 99")
    product: ProductId | None = Field(None, description="a fixed coupon's product")


_KIND = (
    "fixed: `value` off one `product`; threshold: `value` off an order of at least "
    "`threshold`; no_threshold: `value` off any order; percent: `value` percent off"
)


class Terms(_More):
    """A batch's terms, optional: with them, the batch is created by the same call."""

    kind: Kind | None = Field(None, description=_KIND)
    value: Amount | None = Field(None, description="minor units off (percent: 1..99)")
    quantity: Quantity | None = Field(None, description="coupons in the batch")


class CreateParams(_More):
    batch: BatchId
    kind: Kind = Field(description=_KIND)
    value: Amount = Field(description="minor units off (percent: 1..99)")
    quantity: Quantity = Field(description="coupons in the batch")


class DropParams(Terms):
    batch: BatchId


class ScheduleParams(Terms):
    batch: BatchId
    drop_at: Millis = Field(description="when to drop it (ms)")


class BatchParams(Params):
    batch: BatchId


class ShareCouponParams(Params):
    batch: BatchId | None = Field(description="the batch a share grants from; null: none")


class Batch(Result):
    model_config = ConfigDict(extra="allow")  # the batch hash may grow fields

    batch: str
    state: str | None = Field(None, description="created, scheduled, live or ended")
    kind: str | None = None
    value: int | None = None
    threshold: int | None = None
    quantity: int | None = None
    left: int | None = Field(None, description="coupons not yet granted")
    granted: int | None = None
    valid_until: int | None = None
    claim_until: int | None = Field(None, description="claims close (set when dropped)")
    drop_at: int | None = Field(None, description="a scheduled drop's time (0: none)")
    title: str | None = None
    product: str | None = None


class BatchList(Result):
    batches: list[Batch]


class ShareCoupon(Result):
    batch: str | None


def _terms(params: Params) -> dict[str, Any]:
    return params.model_dump(exclude_none=True, exclude={"batch", "drop_at"})


async def _create(engine: Engine, call: Call) -> Any:
    return await engine.coupons.create(call.room, batch=call.params.batch, **_terms(call.params))


async def _drop(engine: Engine, call: Call) -> Any:
    return await engine.coupons.drop(call.room, call.params.batch, **_terms(call.params))


async def _schedule(engine: Engine, call: Call) -> Any:
    p = call.params
    return await engine.coupons.schedule(call.room, p.batch, p.drop_at, **_terms(p))


async def _end(engine: Engine, call: Call) -> Any:
    return await engine.coupons.end(call.room, call.params.batch)


async def _status(engine: Engine, call: Call) -> Any:
    return await engine.coupons.status(call.room, call.params.batch)


async def _list(engine: Engine, call: Call) -> Any:
    return {"batches": await engine.coupons.list(call.room)}


async def _share(engine: Engine, call: Call) -> Any:
    return await engine.coupons.set_share_batch(call.room, call.params.batch)


_BATCH = (ErrorCode.UNKNOWN_BATCH,)


def commands() -> list[Command]:
    return [
        Command("create_coupon", "Define a coupon batch without dropping it.", CreateParams,
                Batch, _create, errors=(ErrorCode.BATCH_EXISTS,),
                doc="Share-for-coupon grants may use it at once (`share_recorded` with `batch`, "
                    "or `set_share_coupon`); `drop_coupon` or `schedule_coupon` shows it to "
                    "viewers later. Writes `coupon.created`."),
        Command("drop_coupon", "Drop a coupon batch now: viewers get a popup and may claim.",
                DropParams, Batch, _drop,
                errors=(ErrorCode.UNKNOWN_BATCH, ErrorCode.BATCH_EXISTS, ErrorCode.ENDED),
                doc="With `kind`, `value` and `quantity` the batch is created and dropped in one "
                    "step; without, a defined or scheduled batch is dropped. Viewers get a "
                    "`coupon` popup and `claim` until `claim_until`; the count left reaches them "
                    "at most once per tick (`coupon_left`), the last coupon a "
                    "`coupon_all_claimed` popup. Writes `coupon.dropped`."),
        Command("schedule_coupon", "Drop a coupon batch at a given time.", ScheduleParams, Batch,
                _schedule,
                errors=(ErrorCode.UNKNOWN_BATCH, ErrorCode.BATCH_EXISTS, ErrorCode.BAD_STATE,
                        ErrorCode.ENDED),
                doc="A job of the durable scheduler drops it at `drop_at` (on one node, once, "
                    "even across restarts). With the terms, the batch is created too. "
                    "Scheduling again moves the drop. Writes `coupon.scheduled` (or "
                    "`coupon.created`)."),
        Command("end_coupon", "Close a coupon batch's claims now.", BatchParams, Batch, _end,
                errors=_BATCH, doc="A scheduled batch is not dropped. Viewers get a "
                "`coupon_ended` popup. Coupons granted stay granted. Writes `coupon.ended`."),
        Command("coupon_status", "A coupon batch's terms and counts.", BatchParams, Batch,
                _status, errors=_BATCH),
        Command("list_coupons", "The room's coupon batches.", NoParams, BatchList, _list,
                read_only=True, path="/rooms/{room}/coupons"),
        Command("set_share_coupon", "Choose the batch a share of the room grants from.",
                ShareCouponParams, ShareCoupon, _share, errors=_BATCH,
                doc="`share_recorded` then grants the sharing user one coupon of it (once per "
                    "user and batch, through the claim script); null stops it."),
    ]  # fmt: skip
