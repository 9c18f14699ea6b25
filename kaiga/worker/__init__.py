"""The job worker: the durable job queue's consumer, a service beside the Studio.

One `Worker` per model and device claims jobs from the database, generates them with the Studio and
stores their images in the gallery; any number of processes may run workers on one database. It
imports nothing of the server: `kaiga serve` (kaiga.server.app) only builds and starts them.
"""

from kaiga.worker.consumer import INVALID_REQUEST, Current, Worker, Workers

__all__ = ["INVALID_REQUEST", "Current", "Worker", "Workers"]
