import pytest

from orders.pipeline import ORDER_PIPELINE, PIPELINE, SLOW_PARTNER, URGENT


def test_the_pipeline_has_six_steps_on_their_queues():
    assert [(s.name, s.task, s.queue) for s in PIPELINE] == [
        ("payment_capture", "orders.payment_capture", "high"),
        ("confirmation_email_send", "orders.confirmation_email_send", "high"),
        ("erp_sync", "fulfillment.erp_sync", "medium"),
        ("invoice_render", "fulfillment.invoice_render", "medium"),
        ("label_purchase", "fulfillment.label_purchase", "medium"),
        ("analytics_track", "orders.analytics_track", "low"),
    ]


def test_payment_gates_everything_and_the_label_waits_for_the_erp_sync():
    assert ORDER_PIPELINE.root == "payment_capture"
    assert ORDER_PIPELINE.successors == {
        "payment_capture": (
            "confirmation_email_send",
            "erp_sync",
            "invoice_render",
            "analytics_track",
        ),
        "confirmation_email_send": (),
        "erp_sync": ("label_purchase",),
        "invoice_render": (),
        "label_purchase": (),
        "analytics_track": (),
        "payment_refund": (),
        "erp_cancel": (),
        "label_void": (),
        "cancellation_email_send": (),
        "payment_failed_email_send": (),
    }


def test_retry_policies_follow_the_design_seeds():
    assert URGENT.delays == (1, 2, 4, 8, 16)
    assert SLOW_PARTNER.delays == (10, 60, 600)


@pytest.mark.parametrize("retries_done", range(5))
def test_urgent_countdown_is_the_seed_with_twenty_percent_jitter(retries_done, settings):
    settings.PIPELINE_RETRY_DELAY_SCALE = 1
    seed = URGENT.delays[retries_done]

    countdowns = [URGENT.countdown(retries_done) for _ in range(200)]

    assert all(0.8 * seed <= c <= 1.2 * seed for c in countdowns)
    assert len(set(countdowns)) > 1


def test_countdown_is_none_once_retries_are_used_up():
    assert URGENT.countdown(5) is None
    assert SLOW_PARTNER.countdown(3) is None
