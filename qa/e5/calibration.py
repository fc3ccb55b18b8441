"""SmoothQuant calibration for the int8 graph: activation ranges measured on a fixed text.

The text (written for this project, one sentence or paragraph a line, in many languages and
registers) runs once through the float graph when the int8 graph is prepared; the per-channel
maxima of the LayerNorm outputs become the SmoothQuant scales. Changing the text changes the
prepared model: bump ``GRAPH_VERSION`` in :mod:`qa.e5.runtime` with it.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .graph import build_graph
from .model_file import ModelFile
from .tokenizer import Tokenizer

CALIBRATION_TEXT = """\
The quick brown fox jumps over the lazy dog while the farmer repairs the old wooden fence near the river.
In 2019, the city council approved a budget of 4.5 million dollars for new bicycle lanes, parks and public libraries.
How much protein should an adult eat per day to stay healthy?
Photosynthesis converts light energy into chemical energy that is stored in glucose molecules inside plant cells.
Die Bundesregierung hat am Mittwoch ein neues Gesetz zum Klimaschutz beschlossen, das ab dem n\u00e4chsten Jahr gilt.
Wie viele Einwohner hat M\u00fcnchen, und welche Sehensw\u00fcrdigkeiten sollte man dort unbedingt besuchen?
Der Rhein flie\u00dft von den Schweizer Alpen bis zur Nordsee und ist eine der wichtigsten Wasserstra\u00dfen Europas.
La R\u00e9volution fran\u00e7aise a profond\u00e9ment transform\u00e9 la soci\u00e9t\u00e9 et les institutions politiques de la France.
Quelle est la meilleure fa\u00e7on d'apprendre une langue \u00e9trang\u00e8re rapidement ?
El Amazonas es el r\u00edo m\u00e1s caudaloso del mundo y atraviesa varios pa\u00edses de Am\u00e9rica del Sur.
Il Colosseo \u00e8 un anfiteatro costruito nel primo secolo dopo Cristo nel centro di Roma.
O Brasil \u00e9 o maior pa\u00eds da Am\u00e9rica do Sul e tem uma enorme diversidade de culturas e paisagens.
De Nederlandse regering investeert miljarden euro's in dijken om het land te beschermen tegen overstromingen.
\u041c\u043e\u0441\u043a\u0432\u0430 \u044f\u0432\u043b\u044f\u0435\u0442\u0441\u044f \u0441\u0442\u043e\u043b\u0438\u0446\u0435\u0439 \u0420\u043e\u0441\u0441\u0438\u0438 \u0438 \u043a\u0440\u0443\u043f\u043d\u0435\u0439\u0448\u0438\u043c \u0433\u043e\u0440\u043e\u0434\u043e\u043c \u0441\u0442\u0440\u0430\u043d\u044b \u043f\u043e \u0447\u0438\u0441\u043b\u0435\u043d\u043d\u043e\u0441\u0442\u0438 \u043d\u0430\u0441\u0435\u043b\u0435\u043d\u0438\u044f.
\u5317\u4eac\u662f\u4e2d\u534e\u4eba\u6c11\u5171\u548c\u56fd\u7684\u9996\u90fd\uff0c\u4e5f\u662f\u5168\u56fd\u7684\u653f\u6cbb\u548c\u6587\u5316\u4e2d\u5fc3\u3002
\u6771\u4eac\u306f\u65e5\u672c\u306e\u9996\u90fd\u3067\u3042\u308a\u3001\u4e16\u754c\u3067\u6700\u3082\u4eba\u53e3\u306e\u591a\u3044\u90fd\u5e02\u570f\u306e\u4e00\u3064\u3067\u3059\u3002
\uc11c\uc6b8\uc740 \ub300\ud55c\ubbfc\uad6d\uc758 \uc218\ub3c4\uc774\uba70 \ud55c\uac15\uc744 \ub530\ub77c \ubc1c\uc804\ud55c \ub300\ub3c4\uc2dc\uc785\ub2c8\ub2e4.
\u0627\u0644\u0642\u0627\u0647\u0631\u0629 \u0647\u064a \u0639\u0627\u0635\u0645\u0629 \u0645\u0635\u0631 \u0648\u0623\u0643\u0628\u0631 \u0645\u062f\u064a\u0646\u0629 \u0641\u064a \u0627\u0644\u0639\u0627\u0644\u0645 \u0627\u0644\u0639\u0631\u0628\u064a \u0645\u0646 \u062d\u064a\u062b \u0639\u062f\u062f \u0627\u0644\u0633\u0643\u0627\u0646.
\u0939\u093f\u0902\u0926\u0940 \u092d\u093e\u0930\u0924 \u0915\u0940 \u0938\u092c\u0938\u0947 \u0905\u0927\u093f\u0915 \u092c\u094b\u0932\u0940 \u091c\u093e\u0928\u0947 \u0935\u093e\u0932\u0940 \u092d\u093e\u0937\u093e\u0913\u0902 \u092e\u0947\u0902 \u0938\u0947 \u090f\u0915 \u0939\u0948\u0964
\u0130stanbul, Avrupa ile Asya'y\u0131 birbirine ba\u011flayan tarihi bir \u015fehirdir.
Polska jest krajem w Europie \u015arodkowej, a jej stolic\u0105 jest Warszawa.
Error 404: the requested page https://example.com/docs/v2/index.html was not found (see RFC 7231, section 6.5.4).
def fibonacci(n): return n if n < 2 else fibonacci(n - 1) + fibonacci(n - 2)
Price: 19,99 \u20ac (inkl. MwSt.) \u2013 Lieferung in 2\u20133 Werktagen; Bestellnummer #A-17/2023.
Albert Einstein entwickelte die Relativit\u00e4tstheorie, die unser Verst\u00e4ndnis von Raum, Zeit und Gravitation grundlegend ver\u00e4nderte. F\u00fcr seine Erkl\u00e4rung des photoelektrischen Effekts erhielt er 1921 den Nobelpreis f\u00fcr Physik. Sp\u00e4ter emigrierte er in die Vereinigten Staaten, wo er bis zu seinem Tod in Princeton lehrte.
The Industrial Revolution began in Great Britain in the late eighteenth century and spread to Europe and North America. Steam engines, mechanized textile production and new iron-making processes changed how goods were made, and millions of people moved from the countryside into rapidly growing cities, where working conditions were often harsh.
"""


def activation_maxima(mf: ModelFile, tokenizer: Tokenizer) -> dict[str, npt.NDArray[np.float64]]:
    """Per-channel |max| of the LayerNorm outputs on the calibration text, from the float graph
    (deterministic), keyed ``qkvL`` / ``fiL`` by the layer whose matrix they feed."""
    from .runtime import TokenEmbeddings, new_session

    built = build_graph(mf, "fp32", masked=False, expose_layer_norms=True)
    session = new_session(built.model, 1)
    embeddings = TokenEmbeddings(mf)
    taps = built.layer_norm_outputs
    maxima = {t: np.zeros(mf.hidden) for t in taps}
    lines = [line for line in CALIBRATION_TEXT.splitlines() if line.strip()]
    for i, line in enumerate(lines):
        prefix = "query: " if i % 2 else "passage: "
        content = tokenizer.content_ids(prefix + line)[: mf.max_positions - 2]
        ids = np.array([[tokenizer.bos, *content, tokenizer.eos]], np.int64)
        outs = session.run(taps, {"emb": embeddings.lookup(ids, np.ones_like(ids, np.int32))})
        for t, o in zip(taps, outs):
            maxima[t] = np.maximum(maxima[t], np.abs(o[0]).max(0))
    scales: dict[str, npt.NDArray[np.float64]] = {}
    for li in range(mf.layers):
        scales[f"qkv{li}"] = maxima[taps[2 * li]]
        scales[f"fi{li}"] = maxima[taps[2 * li + 1]]
    return scales
