"""`python -m lavis_ib.datasets.synthetic`: build the synthetic world.

A package's `__main__` so the module that registers the world's converters is imported once, under its own name
(run as a script, a plain module would register them a second time as `__main__`).
"""

from lavis_ib.datasets.synthetic import main

if __name__ == "__main__":
    main()
