"""The recommendations stage: the local target's stand-in for Amazon Personalize's solutions and batch inference
jobs, and the offline measure of any recommender against popularity and, on generated data, the oracle.

- `batch_format`: Personalize's batch JSON lines (input `{"userId"}` / `{"itemId"}`, output
  `{"input", "output": {"recommendedItems", "scores"}, "error"}`), written and parsed strictly (one parser for
  every reader: delivery, tests, the aws target's job output);
- `data`: the trusted tables a recommender reads (purchases, products, customers, inventory, events);
- `model`: the recipes (user personalization, similar items, popularity count), fitted and scored with numpy;
- `filters`: what Personalize filters would remove (bought in the last N days, out of stock at the customer's
  home store and online);
- `batch`: a batch inference job run locally, input file in, `<input>.out` out, as Personalize writes it;
- `evaluate`: recall, precision, NDCG at 10 and catalogue coverage on a temporal holdout.

May import: crosschannel.core and the stages before it in the chain (import-linter).
"""
