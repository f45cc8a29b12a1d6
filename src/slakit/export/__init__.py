"""
Exporters: slakit's numbers in the systems users already run.

Exporters read the engine's frozen snapshots; none does any work per recorded call.
"""
