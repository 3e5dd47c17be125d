"""The demo page (Gradio Blocks): an image, an instruction, and either generated answers or ranked candidates.

Layout: the served model's name (and a banner when it is untrained); an upload box with a preview of the image as
the model sees it and a gallery of synthetic-world scenes (held-in and held-out tasks); the instruction, the mode
(generate or rank), the decoding settings and the candidates; a message line for bad input and notices; the answer,
with the model and the settings that made it. Model calls go through Gradio's queue one at a time (one
`concurrency_id` for everything that runs the model): other visitors wait their turn, they are not refused.
"""

from __future__ import annotations

import html
import itertools

import gradio as gr
from PIL import Image

from lavis_ib.app.checks import DemoInputError, check_candidates, check_decoding, check_image, check_instruction
from lavis_ib.app.examples import Gallery
from lavis_ib.app.served import ModelSlot, ServedModel

GENERATE, RANK = "Generate", "Rank candidates"
BEAM, SAMPLING = "Beam search", "Nucleus sampling"
DEFAULTS = dict(num_beams=5, max_length=10, min_length=1, length_penalty=0.0, repetition_penalty=1.5,
                temperature=1.0, top_p=0.9)
"""The decoding the page starts with: the zero-shot evaluation's for short answers (beams 5, at most 10 tokens,
length penalty 0, repetition penalty 1.5), and LAVIS's sampling defaults."""
CSS = """
#message .error { color: #b00020; font-weight: 600; }
#message .notice { color: #8a5a00; }
.answer-text { font-size: 1.25em; margin: 0.3em 0; }
.answer-meta { color: #555; font-size: 0.85em; }
.bar-row { display: flex; align-items: center; gap: 0.6em; margin: 0.2em 0; }
.bar-label { width: 9em; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.bar-track { flex: 1; background: #eee; height: 1.1em; }
.bar { background: #3b6fd8; height: 100%; }
.bar-value { width: 11em; font-variant-numeric: tabular-nums; }
"""


def message_html(request: int, error: str | None = None, notices: list[str] = ()) -> str:
    """The message line of request number `request`: an error (what is wrong and what to do), else the notices
    about repaired input."""
    lines = [f'<p class="error">{html.escape(error)}</p>'] if error else \
        [f'<p class="notice">{html.escape(n)}</p>' for n in notices]
    return f'<div data-request="{request}">{"".join(lines)}</div>'


def meta_html(served: ServedModel, settings: str) -> str:
    return (f'<div class="answer-meta">model: {html.escape(served.identity)}<br>'
            f"settings: {html.escape(settings)}</div>")


def answers_html(request: int, answers: list[str], served: ServedModel, settings: str, done: bool) -> str:
    """Generated answers (numbered when several) above the model and settings that produced them; `done` once the
    stream has ended."""
    rows = "".join(f'<div class="answer-text">{f"{i}. " if len(answers) > 1 else ""}'
                   f"{html.escape(a) or '<i>(empty)</i>'}</div>" for i, a in enumerate(answers, 1))
    return (f'<div id="answers" data-request="{request}" data-done="{str(done).lower()}">{rows}</div>'
            f"{meta_html(served, settings)}")


def bars_html(request: int, ranked, served: ServedModel, settings: str) -> str:
    """A bar per candidate, most probable first: probability normalised over the candidates, and log-likelihood."""
    rows = "".join(
        f'<div class="bar-row" data-candidate="{html.escape(c.text)}" data-probability="{c.probability:.6f}">'
        f'<span class="bar-label">{html.escape(c.text)}</span>'
        f'<span class="bar-track"><span class="bar" style="display:block;width:{100 * c.probability:.2f}%"></span>'
        f'</span><span class="bar-value">{100 * c.probability:.1f} % (log-lik {c.log_likelihood:.2f}, '
        f"{c.num_tokens} tok)</span></div>" for c in ranked)
    return f'<div id="ranking" data-request="{request}">{rows}</div>{meta_html(served, settings)}'


PREVIEW_SIDE = 224


def enlarged(image):
    """A small image scaled up by a whole factor (nearest neighbour, pixels kept sharp) to about `PREVIEW_SIDE`."""
    factor = PREVIEW_SIDE // max(image.size)
    return image.resize((image.width * factor, image.height * factor), Image.NEAREST) if factor > 1 else image


class DemoPage:
    """The page's handlers around one served model; `blocks()` lays the page out and wires them."""

    def __init__(self, slot: ModelSlot, gallery: Gallery):
        self.slot, self.gallery = slot, gallery
        self.requests = itertools.count(1)  # numbers each answer and message, so a repeated one still reads as new

    @staticmethod
    def model_image(served: ServedModel, path: str | None):
        """The uploaded file as RGB and its processed `[1, 3, S, S]` tensor, with notices; raises DemoInputError."""
        checked = check_image(path, served.image_size)
        return checked, served.vis_processor(checked.image).unsqueeze(0).to(served.model.device)

    def preview(self, path: str | None):
        """On upload: the image as the model will get it (RGB), or the message saying why it cannot be used."""
        request = next(self.requests)
        if not path:
            return None, message_html(request)
        try:
            checked = check_image(path, self.slot.wait().image_size)
        except DemoInputError as error:
            return None, message_html(request, str(error))
        return enlarged(checked.image), message_html(request, notices=checked.notices)

    def answer(self, path, instruction, mode, method, num_beams, max_length, min_length, temperature, top_p,
               length_penalty, repetition_penalty, num_outputs, candidates):
        """Yields `(answer, message)` updates: the streamed answer (or the ranking), or the message for bad input."""
        from lavis_ib.app.answers import rank_candidates, stream_answers  # torch: imported with the model, not before

        request = next(self.requests)
        try:
            served = self.slot.wait()
            checked, image = self.model_image(served, path)
            text, notices = check_instruction(instruction, served.model.tokenizer, int(served.model.cfg.max_txt_len))
            notices = checked.notices + notices
            if mode == RANK:
                choices = check_candidates(candidates)
                ranked = rank_candidates(served.model, image, text, choices)
                yield bars_html(request, ranked, served, "ranking by summed log-likelihood "
                                "(score_candidates), probabilities normalised over the candidates"), \
                    message_html(request, notices=notices)
                return
            decoding = check_decoding(method == SAMPLING, num_beams, max_length, min_length, temperature, top_p,
                                      length_penalty, repetition_penalty, num_outputs)
        except DemoInputError as error:
            yield "", message_html(request, str(error))
            return
        settings, message = decoding.describe(), message_html(request, notices=notices)
        answers: list[str] = []
        for answers in stream_answers(served.model, image, text, decoding):
            yield answers_html(request, answers, served, settings, done=False), message
        yield answers_html(request, answers, served, settings, done=True), message

    def pick(self, event: gr.SelectData):
        """A gallery scene chosen: its image, instruction, mode and candidates go into the inputs."""
        example = self.gallery.wait()[event.index]
        mode = RANK if example.candidates else GENERATE
        return example.image, example.instruction, mode, ", ".join(example.candidates)

    def scenes(self):
        """The gallery's scenes with their labels, once drawn (the page asks for them when it opens)."""
        return [(e.image, e.label) for e in self.gallery.wait()]

    def identity(self):
        """The model line, the banner (an untrained model), and the timer refreshing them, off once the model is
        there."""
        banner = self.slot.banner
        return (f"Model: `{self.slot.identity}`", gr.Markdown(f"**{banner}**" if banner else "", visible=bool(banner)),
                gr.Timer(active=not self.slot.ready.is_set()))

    def blocks(self) -> gr.Blocks:
        with gr.Blocks(title="lavis_ib InstructBLIP demo", analytics_enabled=False) as page:
            gr.Markdown("## InstructBLIP demo (lavis_ib)")
            banner = gr.Markdown("", visible=False, elem_id="banner")
            identity = gr.Markdown(f"Model: `{self.slot.identity}`", elem_id="identity")
            timer = gr.Timer(0.5)
            timer.tick(self.identity, None, [identity, banner, timer], queue=False)
            with gr.Row():
                with gr.Column(scale=1):
                    upload = gr.File(label="Image (PNG, JPEG, WebP, BMP, GIF, TIFF)", elem_id="image-file")
                    preview = gr.Image(label="What the model gets (RGB)", interactive=False, height=240,
                                       elem_id="preview")
                    gallery = gr.Gallery([], label="Example scenes "
                                         "(synthetic world): click one", columns=3, height=260, allow_preview=False,
                                         elem_id="gallery")
                with gr.Column(scale=2):
                    instruction = gr.Textbox(label="Instruction", lines=2, max_length=4000, elem_id="instruction",
                                             placeholder="e.g. Question: how many shapes are there? Short answer:")
                    with gr.Row():
                        mode = gr.Radio([GENERATE, RANK], value=GENERATE, label="Mode", elem_id="mode")
                        candidates = gr.Textbox(label="Candidates (rank mode): one per line, or comma-separated",
                                                lines=1, elem_id="candidates", placeholder="circle, square, triangle")
                    button = gr.Button("Answer", variant="primary", elem_id="answer-button")
                    message = gr.HTML(elem_id="message")
                    answer = gr.HTML(elem_id="answer")
                    with gr.Accordion("Decoding (generate mode)", open=True):
                        method = gr.Radio([BEAM, SAMPLING], value=BEAM, label="Method", elem_id="method")
                        with gr.Row():
                            num_beams = gr.Slider(1, 10, value=DEFAULTS["num_beams"], step=1, label="num_beams",
                                                  elem_id="num-beams")
                            num_outputs = gr.Slider(1, 5, value=1, step=1, label="number of outputs",
                                                    elem_id="num-outputs")
                            min_length = gr.Number(value=DEFAULTS["min_length"], precision=0, label="min length",
                                                   elem_id="min-length")
                            max_length = gr.Number(value=DEFAULTS["max_length"], precision=0,
                                                   label="max length (new tokens)",
                                                   elem_id="max-length")
                        with gr.Row():
                            temperature = gr.Slider(0, 2, value=DEFAULTS["temperature"], step=0.05,
                                                    label="temperature", elem_id="temperature")
                            top_p = gr.Slider(0.05, 1, value=DEFAULTS["top_p"], step=0.05, label="top-p")
                            length_penalty = gr.Slider(-2, 2, value=DEFAULTS["length_penalty"], step=0.1,
                                                       label="length penalty")
                            repetition_penalty = gr.Slider(0.5, 3, value=DEFAULTS["repetition_penalty"], step=0.05,
                                                           label="repetition penalty")
            page.load(self.scenes, None, gallery, queue=False)
            upload.change(self.preview, upload, [preview, message], queue=False)
            gallery.select(self.pick, None, [upload, instruction, mode, candidates], queue=False)
            inputs = [upload, instruction, mode, method, num_beams, max_length, min_length, temperature, top_p,
                      length_penalty, repetition_penalty, num_outputs, candidates]
            event = dict(fn=self.answer, inputs=inputs, outputs=[answer, message], concurrency_limit=1,
                         concurrency_id="model")
            button.click(**event)
            instruction.submit(**event)
        return page


def build_page(slot: ModelSlot, gallery: Gallery) -> gr.Blocks:
    """The page for the model in `slot`, its queue serving one model call at a time."""
    return DemoPage(slot, gallery).blocks().queue(default_concurrency_limit=1)
