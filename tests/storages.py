"""A storage like S3's for the tests: its files have no path on a filesystem."""

import os

from django.core.files.storage import InMemoryStorage


class PathlessStorage(InMemoryStorage):
    """Files in memory, and no `path()`, as django-storages' S3Storage (Storage.path)."""

    def path(self, name: str) -> str:
        raise NotImplementedError("This backend doesn't support absolute paths.")

    def _relative_path(self, name: str) -> str:  # InMemoryStorage's own use of paths
        return os.path.relpath(super().path(name), self.location)
