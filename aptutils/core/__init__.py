"""Layer 0, core: parameters (knobs, profiles, Settings), the artifact store, device and precision,
token counts and the one counting engine, errors, and the verdict records. Imports nothing of aptutils.
"""
