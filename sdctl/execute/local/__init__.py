"""The local stack: the same data path as on AWS, on one machine, with moto as AWS."""
