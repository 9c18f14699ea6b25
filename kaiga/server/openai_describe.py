"""Midjourney's /describe through the OpenAI API: `POST /v1/chat/completions` with an image, model `kaiga-describe`.

OpenAI's Images API has no image-to-text endpoint; OpenAI's clients ask a vision model in a chat instead, a user
message whose content holds the image as an `image_url` part. kaiga answers that request with the scenes judge's
description (kaiga/eval/describe.py, as A1111's `/sdapi/v1/interrogate` and `kaiga describe`): each choice is one
prompt that would make the image again, the canonical caption first; `n` (1-4) asks for more, in other words.
The message's text is not read (kaiga answers every question with its prompts), so it is not a chat model:
any other model name, a second image or a streamed answer is refused in one line naming the field.

| OpenAI | kaiga |
|---|---|
| model `kaiga-describe` | the scenes judge |
| the last user message's `image_url` part: a `data:` URL (base64 PNG, JPEG or WebP, ≤ 4 MiB) | the image (kaiga fetches nothing from the web) |
| n (1-4) | that many prompts, one per choice |
| (answer) choices[i].message.content | a prompt that regenerates the image |
| (answer) `kaiga` | the judge's confidence, `low_confidence`, every prompt |

Example (the `openai` client):
    client.chat.completions.create(model="kaiga-describe", messages=[{"role": "user", "content": [
        {"type": "text", "text": "Describe this image as a prompt"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0..."}}]}])

    >>> DescribeBody(model="kaiga-describe", messages=[{"role": "user", "content": "hi"}]).n
    1
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from kaiga.server.auth import authenticate
from kaiga.server.edit_inputs import decode_base64, read_image
from kaiga.server.errors import ApiError
from kaiga.store.uploads import MAX_UPLOAD_BYTES

DESCRIBE_MODEL = "kaiga-describe"
MAX_PROMPTS = 4  # Midjourney's /describe gives four

router = APIRouter(tags=["OpenAI-compatible"], dependencies=[Depends(authenticate)])


class DescribeBody(BaseModel):
    """A chat completion request, as the openai client sends it; the sampling fields a chat model reads
    (temperature, max_tokens, ...) are accepted and unused: kaiga's prompts are the judge's reading."""

    model_config = ConfigDict(extra="allow")
    model: str
    messages: list[dict[str, Any]] = Field(min_length=1)
    n: int = Field(1, ge=1, le=MAX_PROMPTS)
    stream: bool = False


def image_part(messages: list[dict[str, Any]]) -> tuple[str, str]:
    """(the base64 image of the last user message's one `image_url` part, the field path it came from); ApiError
    naming the field for a message without one, with two, or with a URL that is not `data:`.

    >>> image_part([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,aGk="}}]}])
    ('data:image/png;base64,aGk=', 'messages[0].content[0].image_url.url')
    """
    users = [i for i, m in enumerate(messages) if m.get("role") == "user"]
    if not users:
        raise ApiError(400, "messages: a user message with an image is needed", param="messages",
                       code="invalid_value")
    i = users[-1]
    content = messages[i].get("content")
    parts = [(j, p) for j, p in enumerate(content)
             if isinstance(p, dict) and p.get("type") == "image_url"] if isinstance(content, list) else []
    where = f"messages[{i}].content"
    if len(parts) != 1:
        raise ApiError(400, f"{where}: one image_url part, the image to describe (got {len(parts)})",
                       param=where, code="invalid_value")
    j, part = parts[0]
    image_url = part.get("image_url")
    url = image_url.get("url") if isinstance(image_url, dict) else image_url
    where = f"{where}[{j}].image_url.url"
    if not isinstance(url, str) or not url.startswith("data:"):
        raise ApiError(400, f"{where}: a data: URL holding the image in base64 (kaiga fetches nothing from the web)",
                       param=where, code="invalid_value")
    return url, where


@router.post("/v1/chat/completions")
async def describe_image(body: DescribeBody):
    """Midjourney's /describe: prompts that would make the image again, as chat choices (model `kaiga-describe`)."""
    from kaiga.eval.describe import LOW_CONFIDENCE, describe

    if body.model != DESCRIBE_MODEL:
        raise ApiError(400, f"model: kaiga answers chats only to describe an image, as {DESCRIBE_MODEL!r} "
                            f"(got {body.model!r})", param="model", code="model_not_found")
    if body.stream:
        raise ApiError(400, "stream: kaiga-describe answers at once; leave stream off", param="stream",
                       code="invalid_value")
    url, where = image_part(body.messages)
    image = await read_image(decode_base64(url, where, MAX_UPLOAD_BYTES), where)
    d = await run_in_threadpool(describe, image, MAX_PROMPTS)
    choices = [{"index": k, "finish_reason": "stop", "logprobs": None,
                "message": {"role": "assistant", "content": prompt}} for k, prompt in enumerate(d.prompts[:body.n])]
    return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": DESCRIBE_MODEL, "choices": choices,
            "kaiga": {"prompts": d.prompts, "confidence": round(d.confidence, 3),
                      "low_confidence": d.confidence < LOW_CONFIDENCE, "describer": "kaiga scenes judge"}}
