"""Private files: the storage they live in, the random names they get, how they are served.

Exports, invoices, labels and uploaded import files live in STORAGES["private"], never
under MEDIA_ROOT (the public storage of product images, which a web server may serve as
it is). Their names are random, so knowing an order number or an id finds none, and they
are served only through views that check access (private_file_response).
"""

import uuid
from collections.abc import Callable
from functools import wraps
from pathlib import PurePosixPath

from django.contrib.auth.views import redirect_to_login
from django.core.files.storage import Storage, storages
from django.core.signals import setting_changed
from django.db.models.fields.files import FieldFile
from django.http import FileResponse, HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.deconstruct import deconstructible
from django.utils.functional import LazyObject, empty
from django.utils.html import format_html


class PrivateStorage(LazyObject):
    """STORAGES["private"], looked up when first used, as Django's default_storage is for
    "default"; looked up again when the STORAGES setting changes (tests)."""

    def _setup(self) -> None:
        self._wrapped = storages["private"]


_private = PrivateStorage()


def _private_reset(*, setting: str, **kwargs) -> None:
    if setting == "STORAGES":
        _private._wrapped = empty


setting_changed.connect(_private_reset)


def private_storage() -> Storage:
    """The private storage, for FileField(storage=...): a callable, so migrations name it
    and not the backend of the settings they were made with."""
    return _private


def private_name(folder: str, suffix: str) -> str:
    """A new random name in `folder`: "invoices/3f2a…9c.pdf"."""
    return f"{folder}/{uuid.uuid4().hex}{suffix}"


@deconstructible
class RandomName:
    """A FileField's upload_to: a random name in `folder`, keeping only the suffix of the
    name the code or the uploader gave, and only when it is one of `suffixes`."""

    def __init__(self, folder: str, suffixes: tuple[str, ...]) -> None:
        self.folder = folder
        self.suffixes = suffixes

    def __call__(self, instance: object, filename: str) -> str:
        suffix = PurePosixPath(filename).suffix.lower()
        return private_name(self.folder, suffix if suffix in self.suffixes else self.suffixes[0])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RandomName) and (self.folder, self.suffixes) == (
            other.folder,
            other.suffixes,
        )


def private_file_response(
    file: FieldFile, *, filename: str, content_type: str, as_attachment: bool = True
) -> FileResponse:
    """Stream a private file to the one request that was allowed it: kept by no cache,
    its type not sniffed."""
    response = FileResponse(
        file.open("rb"), as_attachment=as_attachment, filename=filename, content_type=content_type
    )
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def staff_only(permission: str) -> Callable:
    """A view for active staff with `permission`; others are sent to the admin's login
    or refused with 403, before anything is looked up."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def checked(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            user = request.user
            if not user.is_authenticated:
                return redirect_to_login(request.get_full_path(), login_url=reverse("admin:login"))
            if not (user.is_active and user.is_staff and user.has_perm(permission)):
                return HttpResponse(
                    f"This file takes staff status and the permission {permission}.\n",
                    status=403,
                    content_type="text/plain",
                )
            return view(request, *args, **kwargs)

        return checked

    return decorate


def private_file_link(view: str, pk: int, text: str) -> str:
    """A link for the admin to a private file's own view (which checks access), never to
    its storage's URL: that would name the file and lead nowhere."""
    return format_html('<a href="{}">{}</a>', reverse(view, args=[pk]), text)
