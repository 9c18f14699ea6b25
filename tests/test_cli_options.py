"""The CLI's request options are derived from `GenerationRequest`: every field is an option (or the
argument) of `kaiga generate`, with the request's name, default and range, save the overrides that
kaiga/cli_options.py lists."""

from __future__ import annotations

import typer.main

from kaiga.cli import EVAL_FIELDS, app
from kaiga.cli_options import CLI_ARGUMENTS, CLI_DEFAULTS, CLI_FLAGS, CLI_PATHS, flag
from kaiga.request import GenerationRequest, field_specs


def _command(*path: str):
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    return command


def _params(command) -> dict:
    return {p.name: p for p in command.params}


def test_every_request_field_is_a_generate_option_or_its_argument():
    params = _params(_command("generate"))
    for name in GenerationRequest.model_fields:
        assert name in params, f"{name}: a request field without an option of `kaiga generate`"
        p = params[name]
        if name in CLI_ARGUMENTS:
            assert p.param_type_name == "argument" and p.required
        else:
            assert p.param_type_name == "option" and p.opts == [flag(name)]


def test_the_option_names_of_generate_are_kept():
    opts = {o for p in _command("generate").params for o in getattr(p, "opts", [])}
    assert {"--negative", "--n", "--steps", "--guidance", "--sampler", "--width", "--height", "--model", "--upscale",
            "--strength", "--truncation", "--temperature", "--top-k", "--top-p", "--candidates", "--seed", "--init",
            "--mask", "--out", "--grid", "--device", "--config"} <= opts
    assert set(CLI_FLAGS) | set(CLI_PATHS) | set(CLI_DEFAULTS) <= set(GenerationRequest.model_fields)


def test_defaults_agree_with_the_request_but_for_the_listed_overrides():
    params = _params(_command("generate"))
    assert CLI_DEFAULTS == {}  # upscale's None is the CLI's view enlargement (CLI_HELP), not a second default
    for name, spec in field_specs().items():
        if name in CLI_ARGUMENTS:
            continue
        want = CLI_DEFAULTS.get(name, spec.default)
        assert params[name].default == want, name
        assert GenerationRequest.model_fields[name].default == spec.default or spec.required


def test_help_shows_the_range_from_the_request_and_the_samplers_from_the_enum():
    params = _params(_command("generate"))
    assert "Range 1-150." in params["steps"].help and "Range 1-16." in params["n"].help
    assert "Range 0-30." in params["guidance"].help and "Range 0.05-2." in params["temperature"].help
    assert "One of ddim, euler, euler-a, dpm++2m, lcm." in params["sampler"].help


def test_eval_commands_take_the_same_request_options():
    generate = _params(_command("generate"))
    for command in ("alignment", "fidelity"):
        params = _params(_command("eval", command))
        for name in EVAL_FIELDS:
            assert params[name].opts == generate[name].opts and params[name].default == generate[name].default
            assert params[name].help == generate[name].help
