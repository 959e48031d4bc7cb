"""The home of the code generated from Moneybird's OpenAPI spec.

``scripts/generate-moneybird`` writes every other module here from the spec copy kept
in the repository (``spec/moneybird/openapi.json``): ``api`` holds a method for each
of the spec's operations, grouped by resource (``Api`` is an administration's root;
sub-resources are built on first use), ``types`` the spec's schemas as TypedDicts
(published as ``hookbird.moneybird.types``), and ``operation_table`` the
``operationId`` → method path table that ``hookbird.moneybird.operations`` publishes. Regenerating after Moneybird publishes a
new spec is that one command, and the diff shows what changed. Each generated module
says so in its first line and is never edited by hand (a test regenerates and
compares): hand-written behaviour goes in :mod:`hookbird.moneybird.resources`, and
how a path becomes a name (plus the few names the path cannot tell) in the generator.

How the generated code is used: a generated method only builds its request (method,
path under the administration's id, query, body wrapped as the spec says) and hands
it to the sending client (:meth:`hookbird.moneybird.client.Client.request`, ``send``,
``paginate``); budget, auth, retries and error mapping stay in
:mod:`hookbird.moneybird.client`. Imports run one way, resources → here → client:
modules here may import ``client``, ``errors`` and ``responses``, never
``resources``, which subclasses the generated groups to add its hand-written methods.
"""
