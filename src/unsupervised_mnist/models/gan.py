"""DCGAN sized for 28x28 (Radford et al., 2016) with an encoder trained to invert the generator.

The encoder E maps an image to the z that G would turn back into it, so the GAN has `encode`/`decode`
like the autoencoders and takes part in reconstruction and clustering. E learns on two terms: latent
regression on G's own samples, ||E(G(z)) - z||^2, and image reconstruction of real noisy images,
G(E(x)) ~ x (as in "inverting the generator" and the ALI/BiGAN line). The discriminator's penultimate
features are a second code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from unsupervised_mnist.config import COUNT, RATE, TRAINING, Params, Rule, Section, between, one_of
from unsupervised_mnist.errors import ParamsError
from unsupervised_mnist.models import adversarial as adv
from unsupervised_mnist.models.blocks import Images, conv_decoder, conv_encoder
from unsupervised_mnist.models.objective import Objective, adam, frozen, recon_mse
from unsupervised_mnist.models.registry import Gate, ModelSpec, register


class Discriminator(nn.Module):
    def __init__(self, channels: list[int], feature_dim: int = 256, spectral_norm: bool = False, dropout: float = 0.0):
        super().__init__()
        # No batch norm: it would break the gradient penalty of WGAN-GP (Gulrajani et al., 2017).
        self.body = nn.Sequential(conv_encoder(feature_dim, channels, leaky=True), nn.LeakyReLU(0.2))
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(feature_dim, 1))
        if spectral_norm:  # every layer 1-Lipschitz (Miyato et al., 2018): steadier D, no penalty term
            for layer in [*self.body.modules(), *self.head.modules()]:
                if isinstance(layer, (nn.Conv2d, nn.Linear)):
                    nn.utils.parametrizations.spectral_norm(layer)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x)).squeeze(1)


class GAN(nn.Module):
    def __init__(self, latent_dim: int, channels: list[int], spectral_norm: bool = False, fc: int = 0,
                 d_dropout: float = 0.0):
        super().__init__()
        self.latent_dim = latent_dim
        self.generator = conv_decoder(latent_dim, channels, batch_norm=True, fc=fc)
        self.discriminator = Discriminator(channels, spectral_norm=spectral_norm, dropout=d_dropout)
        self.encoder = conv_encoder(latent_dim, channels)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.generator(z))

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        z = torch.randn((n, self.latent_dim), generator=generator, device=next(self.parameters()).device)
        return self.decode(z)

    @property
    def decoder(self) -> nn.Module:
        return self.generator

    def second_codes(self) -> dict[str, tuple]:
        """The discriminator's features, clustered on the test split only (a second UMAP would cost a stage
        about 6 s, for a code nobody selects on)."""
        return {"dfeat_": (self.discriminator.features, ("test",))}

    def exports(self) -> dict[str, nn.Module]:
        return {"generator": Images(self.generator), "encoder": self.encoder}


class GANObjective(Objective):
    """DCGAN step (D, then G) plus an encoder step that learns to invert G. D and E see real and generated images
    in one concatenated batch (neither has batch norm, so this equals two passes), which keeps every training
    pass a single call of the part being trained, as DDP needs.

    With gan.ema > 0 the optimiser trains a live copy of G, and `model.generator`, what is saved, sampled and
    inverted by the encoder, is the moving average of its weights (Karras et al., 2018; Yazici et al., 2019):
    the average of the last few hundred steps draws cleaner digits than the last step's weights. With
    gan.encoder_epochs the last epochs train the encoder alone, against that final average (what `decode` is),
    instead of a step of it in every GAN step against a generator still moving."""

    def __init__(self, model: GAN, params: Params, section: Section, device: torch.device):
        p = section
        self.ema, self.resample_bn, self.encoder_epochs, self.encoder_only = p.ema, p.ema_bn == "resample", \
            p.encoder_epochs, False
        live = model.generator
        if self.ema:  # the average is what the model holds; the optimizer trains the live generator
            self.average = adv.moving_average(live, self.ema)
            model.generator = self.average.module
        parts = {"discriminator": model.discriminator, "generator": live, "encoder": model.encoder}
        super().__init__(model, parts, denoising=True, device=device, precision=params.train.precision)
        self.kind, self.gp_weight, self.encoder_weight = p.loss, p.gp_weight, p.encoder_weight
        betas = (p.beta1, 0.999) if p.loss != "wgan-gp" else (p.beta1, 0.9)
        self.optimizers = {name: adam(part.parameters(), p.d_lr if name == "discriminator" else p.lr, betas=betas,
                                      decoupled=False) for name, part in parts.items()}

    @classmethod
    def total_epochs(cls, section: Section) -> int:
        return section.epochs + section.encoder_epochs

    def extra_state(self):
        return {"live_generator": self.parts["generator"].state_dict(),
                "ema_updates": self.average.multi_avg_fn.updates} if self.ema else {}

    def load_extra_state(self, state):
        if self.ema:
            self.parts["generator"].load_state_dict(state["live_generator"])
            self.average.multi_avg_fn.updates = int(state["ema_updates"])
            self.average.n_averaged.fill_(int(state["ema_updates"]) + 1)

    def scheduled_optimizers(self):
        # The encoder keeps its rate: with gan.encoder_epochs it learns after the schedule has ended.
        return [self.optimizers["discriminator"], self.optimizers["generator"]]

    def start_epoch(self, epoch, epochs, train_clean):
        self.encoder_only = self.encoder_epochs > 0 and epoch > epochs - self.encoder_epochs

    def end_epoch(self, generator):
        if self.ema and self.resample_bn and not self.encoder_only:
            adv.resample_bn(self.model.generator, self.model.latent_dim, generator)

    def scores(self, discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return discriminator(torch.cat([real, fake])).float().split(len(real))

    def encoder_loss(self, encoder: nn.Module, z, fake, clean, noisy) -> tuple[torch.Tensor, torch.Tensor]:
        """||E(G(z)) - z||^2 and BCE(G(E(noisy)), clean); G (the saved one, in evaluation mode, as `decode`
        runs it) is only passed through, never updated here."""
        latent_fake, latent_noisy = encoder(torch.cat([fake.detach(), noisy])).float().split(len(clean))
        generator = self.model.generator
        was_training = generator.training
        logits = generator.eval()(latent_noisy).float()
        generator.train(was_training)
        return F.mse_loss(latent_fake, z), F.binary_cross_entropy_with_logits(logits, clean)

    def train_step(self, clean, noisy, generator, rows):
        model, n = self.model, len(clean)
        d, g, e = self.nets["discriminator"], self.nets["generator"], self.nets["encoder"]
        z = torch.randn((n, model.latent_dim), generator=generator, device=clean.device)
        if self.encoder_only:  # D and G rest while the encoder learns to invert the final G
            zero = torch.zeros((), device=clean.device)
            return {"d_loss": zero, "g_loss": zero, "e_loss": self.encoder_step(e, z, clean, noisy)}

        # 1. Discriminator: real images against G's samples.
        with self.amp():
            fake = torch.sigmoid(g(z))
            d_loss = adv.d_loss(self.kind, *self.scores(d, clean, fake.detach()))
        if self.kind == "wgan-gp":
            d_loss = d_loss + self.gp_weight * adv.gradient_penalty(model.discriminator, clean, fake.detach(),
                                                                    generator)
        self.update("discriminator", d_loss)

        # 2. Generator: fool the (now fixed) discriminator.
        with frozen(model.discriminator), self.amp():
            g_loss = adv.g_loss(self.kind, model.discriminator(fake).float())
        self.update("generator", g_loss)
        if self.ema:
            adv.update_average(self.average, self.parts["generator"])

        # 3. Encoder: invert the (fixed) generator; with gan.encoder_epochs it learns after the GAN instead.
        e_loss = self.encoder_step(e, z, clean, noisy, fake) if not self.encoder_epochs else torch.zeros_like(g_loss)
        return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach(), "e_loss": e_loss}

    def encoder_step(self, e: nn.Module, z: torch.Tensor, clean: torch.Tensor, noisy: torch.Tensor,
                     fake: torch.Tensor | None = None) -> torch.Tensor:
        """||E(G(z)) - z||^2 + encoder_weight * BCE(G(E(noisy)), clean). Without `fake` (the encoder's own
        epochs), G(z) comes from the averaged generator, run as `decode` runs it."""
        if fake is None:
            average, was_training = self.model.generator, self.model.generator.training
            with torch.no_grad(), self.amp():
                fake = torch.sigmoid(average.eval()(z))
            average.train(was_training)
        with frozen(self.model.generator), self.amp():
            latent, image = self.encoder_loss(e, z, fake, clean, noisy)
        e_loss = latent + self.encoder_weight * image
        self.update("encoder", e_loss)
        return e_loss.detach()

    def val_losses(self, clean, noisy, generator, rows):
        model = self.model
        z = torch.randn((len(clean), model.latent_dim), generator=generator, device=clean.device)
        with self.amp():
            fake = model.decode(z)
            d_loss = adv.d_loss(self.kind, *self.scores(model.discriminator, clean, fake))
            g_loss = adv.g_loss(self.kind, model.discriminator(fake).float())
            latent, image = self.encoder_loss(model.encoder, z, fake, clean, noisy)
        return {"d_loss": d_loss, "g_loss": g_loss, "e_latent_mse": latent, "e_image_bce": image,
                "recon_mse": recon_mse(model, noisy, clean)}


def gan_config(params: Params, section: Section) -> dict:
    return {"latent_dim": params.latent_dim, "channels": list(section.channels),
            "spectral_norm": section.spectral_norm, "fc": section.fc, "d_dropout": section.d_dropout}


def check_gan(values: dict, name: str) -> None:
    if values["train"]["compile"] and values[name]["loss"] == "wgan-gp":
        raise ParamsError(f"params.yaml: {name}.loss='wgan-gp' cannot train with train.compile=true (its gradient "
                          "penalty differentiates twice through the discriminator, which torch.compile does not "
                          f"support): set train.compile: false or another {name}.loss")


register(ModelSpec(
    name="gan", network=GAN, config=gan_config, objective=GANObjective, check=check_gan,
    gate=Gate("test/fid", "min"),
    rules={"loss": one_of("ns", "hinge", "wgan-gp"), "channels": between(list, 1, 4096),
           "fc": between(int, 0, 16384), "d_lr": RATE, "beta1": between(float, 0.0, 1.0, ")"),
           "spectral_norm": Rule(bool), "d_dropout": between(float, 0.0, 1.0, ")"),
           "ema": between(float, 0.0, 1.0, ")"), "ema_bn": one_of("copy", "resample"),
           "encoder_epochs": COUNT, "gp_weight": between(float, 0.0, 1000.0),
           "encoder_weight": between(float, 0.0, 1000.0), **TRAINING},
))
