"""Downloaded bytes made a product image: decoded by Pillow and written again as PNG,
so what is kept is pixels, never the bytes (or the type) a stranger sent."""

import io
import warnings

from PIL import Image

from safefetch.fetch import FetchRefused

FORMATS = ("PNG", "JPEG", "GIF", "WEBP")
MAX_PIXELS = 40_000_000  # 8000 x 5000


def image_normalize(content: bytes, *, max_pixels: int = MAX_PIXELS) -> bytes:
    """The image in content as PNG bytes; raise FetchRefused when it is none."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(content), formats=FORMATS) as image:
                if image.width * image.height > max_pixels:
                    raise FetchRefused(f"{image.width}x{image.height} is too many pixels")
                image.verify()
            with Image.open(io.BytesIO(content), formats=FORMATS) as image:
                image.load()
                mode = "RGBA" if "A" in image.getbands() or "transparency" in image.info else "RGB"
                out = io.BytesIO()
                image.convert(mode).save(out, format="PNG")
    except FetchRefused:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise FetchRefused(f"not a usable image: {exc}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise FetchRefused(f"not an image ({exc.__class__.__name__})") from None
    return out.getvalue()
