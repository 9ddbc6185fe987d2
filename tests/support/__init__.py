"""Shared test plumbing: the only test code that a test module or a conftest imports.

- ``processes``: waiting until something is true, subprocesses started and waited for until they answer over
  HTTP, the bench's fake OpenAI server as a subprocess. Ports, spawning and the wait itself are
  ``extractor.local.process``'s, the code that starts the bundled Redis and model.
- ``fake_model``: the model faked at the HTTP transport on a real loopback port, and ``FakeModel``'s script.
- ``app``: the app under test, in-process (``app_client``) or under uvicorn in a thread (``serve_app``).
- ``serving``: ``extractor serve`` as a user runs it.
- ``batches``: submitting a batch and reading it back.
- ``redis_db``: which Redis database each suite uses, and a database flushed on both ends of a test.
- ``browser``: the offline browser context and screenshots of the browser suite.
- ``kustomize``: a renderer of the ``deploy/k8s`` kustomize tree, for machines without ``kubectl``.
"""
