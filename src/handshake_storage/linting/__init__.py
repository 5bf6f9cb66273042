"""The migration linter's parts; :mod:`handshake_storage.lint` is the entry point
and the driver (files in, findings out; the only place that parses).

    rule.py         Rule (code, summary, fix, doc, checks), Hit, Finding, the phases
    context.py      Stmt / FileScope: what a check sees, and the views rules share
    sources.py      which files a run lints, in which order; HS002-HS005
    comments.py     a file's comments and the statement or line each belongs to
    suppression.py  `-- lint: ignore`: reading, applying; HS901-HS903
    rules/          the rule units, one module per family
    registry.py     every rule in code order; RULES, the listing, the README table
"""
