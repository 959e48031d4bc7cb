"""The events console: an operator's web page at ``/console`` in the receiver process.

It shows what hookbird already keeps in Redis (stored pushes, their outcome records,
the dead letter, the Moneybird budget, the webhook store) and offers the replay and
requeue that ``hookbird events`` and ``hookbird failed`` offer, through the same
functions (``workers.admin``). It sits beside the command line, above ``receiver`` and
``workers``: the receiver imports it only when it serves the console
(``receiver.app.console_served``), so a receiver without it loads none of this, and
nothing here is on the push path.
"""
