"""Framework-free building blocks of the tamper-evident audit log.

Everything here is plain Python (standard library, ``cryptography``, ``rfc8785``) so that the
exact same code paths that build the log can be exercised, reviewed and re-implemented without
Django. ``audits/verifier.py`` is an independent single-file re-implementation for auditors;
the tests check the two agree.
"""
