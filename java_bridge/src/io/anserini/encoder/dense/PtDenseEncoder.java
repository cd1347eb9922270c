/*
 * pt_dense Java bridge: an Anserini dense query encoder that runs a model exported by pt_dense.export.onnx.
 *
 * Anserini finds encoders by reflection (encoder "PtDense" -> io.anserini.encoder.dense.PtDenseEncoder) and builds
 * them with a public no-arg constructor, so the export folder comes from a system property:
 *
 *   -Dptdense.onnx.dir=/path/to/export   (holds model.onnx, vocab.txt and config.json)
 *
 * Tokenisation is BERT WordPiece (DJL's BertFullTokenizer, lower-casing per config.json), truncated to the query max
 * length; pooling (mean or CLS) and L2 normalisation follow config.json, as pt_dense does in Python. Anserini copies
 * the model and vocabulary into its encoder cache by name: the names carry the model's content hash, so a new export
 * never reuses a stale cached copy.
 */

package io.anserini.encoder.dense;

import ai.djl.modality.nlp.bert.BertFullTokenizer;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.File;
import java.io.IOException;
import java.net.URISyntaxException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

public class PtDenseEncoder extends DenseEncoder {
  public static final String DIR_PROPERTY = "ptdense.onnx.dir";

  private final JsonNode config;
  private final BertFullTokenizer wordpiece;
  private final int maxLength;
  private final String prefix;
  private final boolean meanPooling;
  private final boolean normalize;

  public PtDenseEncoder() throws IOException, OrtException, URISyntaxException {
    super(cachedName(".onnx"), fileUrl("model"), cachedName("-vocab.txt"), fileUrl("vocab"), null);
    this.config = readConfig();
    JsonNode settings = config.get("settings");
    this.maxLength = settings.get("query_max_length").asInt();
    this.prefix = settings.get("query_prefix").asText("");
    this.meanPooling = !"cls".equals(settings.get("pooling").asText());
    this.normalize = settings.get("normalize").asBoolean(true);
    this.wordpiece = new BertFullTokenizer(this.vocab, config.path("lowercase").asBoolean(true));
  }

  /** Token ids: [CLS] + WordPiece(prefix + text), truncated to the query max length, + [SEP]. */
  public long[] tokenIds(String text) {
    List<String> pieces = wordpiece.tokenize(prefix + text);
    int keep = Math.min(pieces.size(), maxLength - 2);
    List<String> tokens = new ArrayList<>(keep + 2);
    tokens.add(CLS);
    tokens.addAll(pieces.subList(0, keep));
    tokens.add(SEP);
    long[] ids = new long[tokens.size()];
    for (int i = 0; i < ids.length; i++) {
      ids[i] = vocab.getIndex(tokens.get(i));
    }
    return ids;
  }

  @Override
  public float[] encode(String query) throws OrtException {
    long[] ids = tokenIds(query);
    long[][] inputIds = new long[][] {ids};
    long[][] mask = new long[1][ids.length];
    java.util.Arrays.fill(mask[0], 1L);
    Map<String, OnnxTensor> inputs = new HashMap<>();
    try {
      inputs.put("input_ids", OnnxTensor.createTensor(environment, inputIds));
      inputs.put("attention_mask", OnnxTensor.createTensor(environment, mask));
      if (session.getInputNames().contains("token_type_ids")) {
        inputs.put("token_type_ids", OnnxTensor.createTensor(environment, new long[1][ids.length]));
      }
      try (OrtSession.Result result = session.run(inputs)) {
        float[][] hidden = ((float[][][]) result.get(0).getValue())[0];
        return pool(hidden);
      }
    } finally {
      for (OnnxTensor tensor : inputs.values()) {
        tensor.close();
      }
    }
  }

  private float[] pool(float[][] hidden) {
    int dim = hidden[0].length;
    float[] pooled = new float[dim];
    if (meanPooling) {
      for (float[] token : hidden) {
        for (int j = 0; j < dim; j++) {
          pooled[j] += token[j];
        }
      }
      for (int j = 0; j < dim; j++) {
        pooled[j] /= hidden.length;
      }
    } else {
      System.arraycopy(hidden[0], 0, pooled, 0, dim);
    }
    return normalize ? DenseEncoder.normalize(pooled) : pooled;
  }

  private static File exportDir() {
    String dir = System.getProperty(DIR_PROPERTY);
    if (dir == null || dir.isEmpty()) {
      throw new IllegalStateException("set -D" + DIR_PROPERTY + "=<folder written by pt_dense.export.onnx>");
    }
    File folder = new File(dir);
    if (!new File(folder, "config.json").isFile()) {
      throw new IllegalStateException(folder + " has no config.json: not a pt_dense ONNX export");
    }
    return folder;
  }

  private static JsonNode readConfig() throws IOException {
    return new ObjectMapper().readTree(new File(exportDir(), "config.json"));
  }

  private static String cachedName(String suffix) throws IOException {
    String hash = readConfig().get("model_sha256").asText();
    return "PtDense-" + hash.substring(0, 16) + suffix;
  }

  private static String fileUrl(String key) throws IOException {
    return new File(exportDir(), readConfig().get(key).asText()).toURI().toString();
  }
}
