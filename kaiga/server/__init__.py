"""The studio server: OpenAI- and AUTOMATIC1111-compatible HTTP APIs over the same Studio as the CLI.

`create_app(ServerSettings(...))` builds the FastAPI app; `kaiga serve` runs it with uvicorn.
"""

from kaiga.server.app import create_app
from kaiga.server.settings import ServerSettings

__all__ = ["ServerSettings", "create_app"]
