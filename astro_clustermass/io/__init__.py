"""Reading and writing: photons (`events`), where event files lie on the sky
(`event_index`), stacks of energy-band images (`ebi_stack`), and the one atomic writer
(`atomic`). Import the submodules; this package imports nothing on its own.
"""
