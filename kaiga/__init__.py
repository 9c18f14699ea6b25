"""kaiga: an open-source AI image-generation studio.

    >>> from kaiga import Studio
    >>> images = Studio().generate("a red car on a snowy road at night", seed=7)  # doctest: +SKIP
"""

from kaiga.version import __version__
__all__ = ["Studio", "GenerationRequest", "__version__"]


def __getattr__(name: str):
    # Lazy: `import kaiga` must stay cheap (the CLI's --help should not load torch).
    if name == "Studio":
        from kaiga.studio import Studio

        return Studio
    if name == "GenerationRequest":
        from kaiga.request import GenerationRequest

        return GenerationRequest
    raise AttributeError(name)
