"""The `gan` family: a text-conditional GAN (generator, projection discriminator, hinge loss, DiffAugment)."""
