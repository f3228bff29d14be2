"""The security reviews' attack probes (issues 52 and 57), one module per review: each attack an
async function over a server's address that returns what its client saw, as plain values.

Tests run an attack as a separate client process (``python -m tests.support.attacks.<module>
<attack> ...`` from the repository root), so the attack's connections, CPU and memory are not the
test's; ``measure`` (or the module's own command line) serves each checkout given, before and
after a fix, and prints the figures that docs/security.md writes down.
"""
