"""X-ray physics shared by the relations, photometry and the simulator.

- `~astro_clustermass.xray.response`: the eROSITA effective area (one ARF reader);
- `~astro_clustermass.xray.spectra`: the thermal spectrum, absorption, folding;
- `~astro_clustermass.xray.ecf`: energy conversion factors (count rate <-> luminosity).
"""
