"""`personalize` in the HTTP APIs: a job steered by a person's taste, as `kaiga generate --personalize USER` is.

The jobs API, OpenAI's generations and A1111's txt2img take the same two kaiga fields: `personalize` (whose
taste: a reviewer name, as the reviews API records them) and `choose_from` (each image the best of this many
candidates, 1-16; 1 is the prompt shift alone). Checked before the job is queued: with keys or A1111 users, a
caller steers by their own taste only (a taste says what someone liked: it is theirs); the person must have
judged enough images to have one (`GET /v1/taste` says who the caller is and how many they judged: the UI's
"personalise" box). The job keeps both beside its request (kaiga.store.jobs.PERSONALIZE), and
the worker learns the taste from the gallery's judgements when it runs the job (kaiga/taste/).

Example:
    >>> import asyncio
    >>> asyncio.run(personalization(None, ANONYMOUS, None, 4)) is None
    True
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from kaiga.server.auth import ANONYMOUS, authenticate
from kaiga.server.errors import ApiError
from kaiga.server.state import Principal, ServerState

router = APIRouter(prefix="/v1/taste", tags=["kaiga taste"], dependencies=[Depends(authenticate)])

PERSONALIZE_HELP = ("kaiga: steer by this person's taste, learned from their ratings, approvals, rejections and stars "
                    "(the reviews API, the UI's review keys): what the prompt leaves open is filled with what they "
                    "like, and each image is the best of `choose_from` by their taste. Your own reviewer name only "
                    "when the server has keys or users.")
CHOOSE_FROM_HELP = "kaiga, with `personalize`: each image kept is the best of this many made (1: the prompt shift alone)."
Personalize = Annotated[str | None, Field(max_length=255, description=PERSONALIZE_HELP)]
ChooseFrom = Annotated[int, Field(ge=1, le=16, description=CHOOSE_FROM_HELP)]


async def personalization(state: ServerState | None, principal: Principal, person: str | None,
                          choose_from: int, plot: str | None = None) -> dict | None:
    """What the job keeps of `personalize` (None: not asked); an ApiError naming the field beside a plot (`plot`:
    what the request calls it) or for a person with too few judgements (400), or for another person's taste (403)."""
    if person is None:
        return None
    if plot is not None:
        raise ApiError(400, f"personalize: not with {plot} (a plot compares settings, a taste would change them)",
                       param="personalize", code="invalid_value")
    if principal != ANONYMOUS and person != principal.name:
        raise ApiError(403, f"personalize: you may steer by your own taste only ({principal.name!r}), not "
                            f"{person!r}'s", param="personalize", code="forbidden")
    from kaiga.taste.judgements import Judgements

    judgements = await run_in_threadpool(Judgements.read, state.db, state.gallery.folder)
    if (why := judgements.too_few(person)) is not None:
        raise ApiError(400, f"personalize: {why}", param="personalize", code="invalid_value")
    return {"person": person, "choose_from": choose_from}


@router.get("")
async def my_taste(request: Request, principal: Principal = Depends(authenticate)):
    """Who the caller's taste belongs to (their reviewer name), how many images they judged, and whether that is
    enough to steer by (`personalize`)."""
    state: ServerState = request.app.state.kaiga
    from kaiga.taste.judgements import Judgements

    judgements = await run_in_threadpool(Judgements.read, state.db, state.gallery.folder)
    return {"person": principal.name, "judgements": judgements.count(principal.name),
            "enough": judgements.too_few(principal.name) is None}
