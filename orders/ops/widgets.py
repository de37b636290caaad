"""Small pieces of admin HTML shared by the apps' admins."""

from django.utils.html import format_html
from django.utils.safestring import SafeString


def progress_bar(done: int, total: int | None) -> SafeString:
    """A native progress bar and "done / total" ("?" while the total is not known yet)."""
    return format_html(
        '<progress value="{}" max="{}"></progress> {} / {}',
        done,
        total or 1,
        done,
        "?" if total is None else total,
    )
