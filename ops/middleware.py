import time

from ops.metrics import CHECKOUT_LATENCY

CHECKOUT_ROUTES = frozenset({"checkout", "api-checkout"})


class CheckoutLatencyMiddleware:
    """Time every checkout post (the page's form and the API) into a histogram.

    First in MIDDLEWARE, so the time includes the other middleware (sessions, CSRF).
    """

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        match = request.resolver_match
        if request.method == "POST" and match and match.url_name in CHECKOUT_ROUTES:
            CHECKOUT_LATENCY.labels(route=match.url_name, code=str(response.status_code)).observe(
                time.perf_counter() - started
            )
        return response
