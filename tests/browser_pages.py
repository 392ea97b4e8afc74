"""Page helpers shared by the standalone browser test (tests/ui) and the host tier (tests/host)."""


def load_lazy_pictures(page, timeout_ms: int = 5000) -> None:
    """gradio 4 lazy-loads its pictures: a full-page screenshot would show empty frames below the fold."""
    page.evaluate("() => document.querySelectorAll('img[loading=lazy]').forEach(i => { i.loading = 'eager'; })")
    try:
        page.wait_for_function("() => [...document.images].every(i => i.complete)", timeout=timeout_ms)
    except Exception:  # a picture still loading is no reason to fail a screenshot
        pass
