"""The home of the code generated from Moneybird's OpenAPI spec; nothing is generated yet.

What goes here, once hookbird covers the whole API: a method for each of the
spec's operations, grouped by resource, the spec's schemas as typed dicts, and the
``operationId`` → method path table that ``hookbird.moneybird.operations`` will
publish. One script in ``scripts/`` writes every module here from the spec copy kept
in the repository; regenerating after Moneybird publishes a new spec is that one
command, and the diff shows what changed. Each generated module says so in its first
line and is never edited by hand: hand-written behaviour goes in
:mod:`hookbird.moneybird.resources`.

How the generated code is used: a generated method only builds its request (method,
path under the administration's id, query, body wrapped as the spec says) and hands
it to the sending client (:meth:`hookbird.moneybird.client.Client.request`, ``send``,
``paginate``); budget, auth, retries and error mapping stay in
:mod:`hookbird.moneybird.client`. Imports run one way, resources → here → client:
modules here may import ``client``, ``errors`` and ``responses``, never
``resources``, which mounts the generated groups on ``Administration`` next to its
hand-written resources.
"""
