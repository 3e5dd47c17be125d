"""LAVIS's task-facing API on top of `generate` and `score_candidates`: `predict_answers` (VQA prompt templates,
ranking against an answer list, the optional spaCy lemmatizer) and `predict_class` (candidates ranked best first).

Our own tasks call `generate` and `score_candidates` directly; these methods exist so that code written against
LAVIS's models runs unchanged. `Blip2Base` inherits them.
"""

from __future__ import annotations

from typing import Sequence

import torch

from lavis_ib.models.text.prompts import INSTRUCTION_KEY, vqa_prompt


class LavisTaskApi:
    """LAVIS's `predict_answers` / `predict_class`, for a model with `generate`, `score_candidates`, `cfg` and
    `ANSWER_LENGTH_PENALTY`."""

    @torch.no_grad()
    def predict_answers(
        self,
        samples: dict,
        num_beams: int = 5,
        inference_method: str = "generate",
        max_len: int = 10,
        min_len: int = 1,
        num_ans_candidates: int = 128,
        answer_list: Sequence[str] | None = None,
        prompt: str = "",
        length_penalty: float | None = None,
        length_semantics: str | None = None,
        **kwargs,
    ) -> list[str]:
        """Short answers by generation; `prompt` is a template with `{}` for the question (and OCR tokens/choices).

        `inference_method="rank"` with an `answer_list` ranks the answers by likelihood instead of generating. A batch
        carrying `instruction` (rendered by the dataset templates) is used as is: `prompt` does not apply to it.
        """
        questions = samples[INSTRUCTION_KEY] if INSTRUCTION_KEY in samples else samples["text_input"]
        questions = [questions] if isinstance(questions, str) else list(questions)
        if prompt and INSTRUCTION_KEY not in samples:
            ocr, choices = samples.get("ocr_tokens"), samples.get("choices")
            texts = [
                vqa_prompt(prompt, q, ocr[i] if ocr is not None else None, choices[i] if choices is not None else None)
                for i, q in enumerate(questions)
            ]
        else:
            texts = questions
        if inference_method == "rank":
            if not answer_list:
                raise ValueError("inference_method='rank' needs an answer_list")
            ranks = self.predict_class({"image": samples["image"], INSTRUCTION_KEY: texts}, list(answer_list))
            answers = [answer_list[int(r[0])] for r in ranks]
        else:
            sub = {"image": samples["image"], INSTRUCTION_KEY: texts}
            penalty = self.ANSWER_LENGTH_PENALTY if length_penalty is None else length_penalty
            answers = self.generate(sub, num_beams=num_beams, max_length=max_len, min_length=min_len,
                                    length_penalty=penalty, length_semantics=length_semantics)
        if self.cfg.apply_lemmatizer or samples.get("apply_lemmatizer"):
            from lavis_ib.metrics import lemmatize  # spaCy, loaded once, only when asked for

            answers = lemmatize(answers)
        return answers


    @torch.no_grad()
    def predict_class(self, samples: dict, candidates: Sequence, n_segments: int = 1, normalize: str = "sum"):
        """Candidate indices ranked best first: `[B, C]` tensor, or a list when candidate counts differ.

        Ranks by summed log-likelihood (what LAVIS's rankings amount to); `normalize="mean"` ranks per token.
        """
        scores = getattr(self.score_candidates(samples, candidates, n_segments), normalize)
        ranks = [torch.argsort(s, descending=True, stable=True) for s in scores]
        return torch.stack(ranks) if len({len(r) for r in ranks}) == 1 else ranks
