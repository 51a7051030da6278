"""Plain helpers the tests import (fixtures stay in tests/conftest.py).

    from helpers.reviews import review_text, tiny_reviews     # the one synthetic-review generator
    from helpers.imdb import make_imdb_tree, tiny_counts      # tiny aclImdb trees and archives
    from helpers.api import SETOSA, assert_error, post        # API inputs and the error shape

`tests/` is on sys.path through `pythonpath = ["tests"]` in pyproject's pytest section.
"""
