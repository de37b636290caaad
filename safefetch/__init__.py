"""One safe fetcher for every URL a user gives us (issue 15): model-free, it imports
nothing of the shop. `url_check` is the cheap check for input time; `fetch` resolves,
connects to the checked address and rechecks every redirect; `image_normalize` decodes
what came and writes it again as PNG."""

from safefetch.fetch import Fetched, FetchRefused, fetch, url_check
from safefetch.images import image_normalize

__all__ = ["FetchRefused", "Fetched", "fetch", "image_normalize", "url_check"]
