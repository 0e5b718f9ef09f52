"""The compliance officers' portal: the Django admin's look, with views where its lists are not enough.

Every page reads through the selectors with the signed-in person's ``Principal`` and every form
calls the same service as the API, so what a person may see and do is decided in one place.
See ``docs/portal.md``.
"""
