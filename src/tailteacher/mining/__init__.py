"""Mining unlabeled images for chosen (rare) classes: the paper's §4.1.

Object crops of the labeled instances of the chosen classes are embedded (``embed``), the pool is
embedded once into shards on disk (``embed``), searched with Faiss (``index``), duplicates are
removed (``dedup``) and the best-ranked images are written as the student's unlabeled json
(``mine``). ``pool`` lists a pool's files; ``quality`` measures a mined set against a pool's truth.
"""
