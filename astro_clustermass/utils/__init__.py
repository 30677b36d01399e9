"""General-purpose helpers of astro_clustermass (the package's warning classes live in
`astro_clustermass.utils.exceptions`)."""
