"""Service handlers shared by the nodes: a ``std_srvs/Trigger`` answered by an action."""


def answer_trigger(action, response):
    """
    Fill a ``std_srvs/Trigger`` response from ``action()`` and return it.

    ``action`` returns the message on success and raises RuntimeError with the reason when the
    request is refused (not enabled, e-stopped, no measurement yet).
    """
    try:
        response.message = action()
        response.success = True
    except RuntimeError as exc:
        response.success, response.message = False, str(exc)
    return response
