"""The request options of `kaiga generate` and the eval commands, derived from `GenerationRequest`'s fields.

`request_options(names)` adds one Typer option per request field to a command: its name, type,
default and help (with the allowed range) are read from the field (`kaiga.request.field_specs`), so a
field added to the request becomes an option without a line here. The command receives them as one
dict, `fields`, keyed by the request's names. Ranges are not given to Typer: the request checks them,
so a bad value is the same one-line error (naming the field) in the CLI as in the APIs.

What the CLI does differently is said once, below: the option names it spells otherwise, the fields
it takes as a file path, and the one default it overrides.

Example:
    >>> @request_options(("steps", "sampler"))
    ... def command(*, fields: dict):
    ...     return fields
    >>> command(steps=4, sampler="euler")
    {'steps': 4, 'sampler': 'euler'}
    >>> [p.name for p in inspect.signature(command).parameters.values()]
    ['steps', 'sampler']
"""

from __future__ import annotations

import functools
import inspect
import typing
from pathlib import Path
from typing import Annotated, Callable, Iterable, Optional

import typer

from kaiga.request import FieldSpec, field_specs

# Request fields whose CLI option is spelled otherwise than --field-name.
CLI_FLAGS = {"negative_prompt": "--negative"}  # `lora` is --lora as it is
# Request fields the CLI takes as a file (PNG, JPEG or WebP): the command stores it and puts its hash in
# the request. Option name and help, in place of the field's.
CLI_PATHS = {
    "init_image": ("--init", "Edit this image (PNG, JPEG or WebP, at most 4 MiB) instead of starting from noise; "
                             "it is resized to the output size."),
    "mask": ("--mask", "With --init: repaint only where this image is white (black = keep); grey levels above "
                       "half count as white."),
}
# Request fields given as the command's positional argument rather than as an option.
CLI_ARGUMENTS = ("prompt",)
# The CLI's own defaults, where it differs from the request's (none today: upscale's None means something
# else here, see CLI_HELP).
CLI_DEFAULTS: dict[str, object] = {}
# Help the CLI words otherwise, for what it can do that the APIs cannot. upscale: the images are for looking
# at on a screen, where the bundled models' 64-pixel images are tiny (`Capabilities.view_upscale`); the
# record keeps the native size (the APIs answer the model's default, 1).
CLI_HELP = {"model": "Model name (see `kaiga models`) or path to a diffusers folder or .safetensors file; "
                     "default: the default model.",
            "upscale": "Enlarge the outputs for viewing (--upscale-method: the learned 4x upscaler by default, "
                       "or Lanczos); the record keeps the native size. Range 1-8. "
                       "Default: enough to show them at 256 pixels or more (4 for the 64-pixel bundled "
                       "models, 1 for Stable Diffusion)."}


def flag(name: str) -> str:
    """The CLI option of a request field: --negative, --top-k, --init, ..."""
    if name in CLI_PATHS:
        return CLI_PATHS[name][0]
    return CLI_FLAGS.get(name, "--" + name.replace("_", "-"))


def default(name: str):
    """The CLI's default for a request field: the request's, unless CLI_DEFAULTS overrides it."""
    return CLI_DEFAULTS.get(name, field_specs()[name].default)


def _escaped(text: str) -> str:
    """Help text with its square brackets shown, not read as rich markup (`[word]`, `[from:to:when]`)."""
    return text.replace("[", "\\[")


def _parameter(spec: FieldSpec) -> inspect.Parameter:
    kind = Path if spec.name in CLI_PATHS else spec.type
    if spec.name in CLI_ARGUMENTS:
        info = typer.Argument(help=_escaped(spec.description), show_default=False)
        return inspect.Parameter(spec.name, inspect.Parameter.KEYWORD_ONLY, annotation=Annotated[kind, info])
    help_text = CLI_PATHS[spec.name][1] if spec.name in CLI_PATHS else CLI_HELP.get(spec.name, spec.help)
    value = default(spec.name)
    # A field whose default is None stays optional here: None lets the request (or the model) decide.
    annotation = Optional[kind] if value is None else kind
    info = typer.Option(flag(spec.name), help=_escaped(help_text), show_default=value not in (None, ""))
    return inspect.Parameter(spec.name, inspect.Parameter.KEYWORD_ONLY, annotation=Annotated[annotation, info],
                             default=value)


def request_options(names: Iterable[str] | None = None) -> Callable[[Callable], Callable]:
    """A decorator adding the request fields `names` (default: all of them) to a command as options.

    The command takes them as its keyword argument `fields` (a dict by request field name), so its own
    parameters are only the options that are not the request's (--out, --device, ...).
    """
    chosen = list(field_specs() if names is None else names)
    added = [_parameter(field_specs()[name]) for name in chosen]

    def decorate(command: Callable) -> Callable:
        hints = typing.get_type_hints(command, include_extras=True)  # resolve the command's own annotations
        own = [p.replace(annotation=hints.get(p.name, p.annotation))
               for p in inspect.signature(command).parameters.values() if p.name != "fields"]
        clash = {p.name for p in own} & set(chosen)
        if clash:
            raise TypeError(f"{command.__name__}: parameters {sorted(clash)} are request options already")
        # Arguments first (Typer takes positional arguments in parameter order), the request options, then the
        # command's own.
        arguments = [p for p in added if p.name in CLI_ARGUMENTS]
        options = [p for p in added if p.name not in CLI_ARGUMENTS]
        own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own]

        @functools.wraps(command)
        def run(**kwargs):
            fields = {name: kwargs.pop(name) for name in chosen if name in kwargs}
            return command(**kwargs, fields=fields)

        parameters = [*arguments, *options, *own]
        run.__signature__ = inspect.Signature(parameters)
        run.__annotations__ = {p.name: p.annotation for p in parameters}
        return run

    return decorate
