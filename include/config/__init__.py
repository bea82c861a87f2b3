"""The bundled policy (``policy.yaml``), shipped as package data of ``fairgate.config``.

``FAIRGATE_POLICY`` points elsewhere; without it, this file is the policy in force.
"""
