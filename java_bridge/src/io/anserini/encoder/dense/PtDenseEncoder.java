/*
 * pt_dense Java bridge: an Anserini dense query encoder that runs a model exported by pt_dense.export.onnx.
 *
 * Anserini finds encoders by reflection (encoder "PtDense" -> io.anserini.encoder.dense.PtDenseEncoder) and builds
 * them with a public no-arg constructor, so the export folder comes from a system property:
 *
 *   -Dptdense.onnx.dir=/path/to/export   (holds model.onnx, tokenizer.json and config.json)
 *
 * Tokenisation runs the export's own tokenizer.json through DJL's HuggingFaceTokenizer (the Rust `tokenizers`
 * library, bundled in the Pyserini fatjar with its native libtokenizers), with the special tokens, normalisation and
 * truncation of the model's family exactly as Python's fast tokenizer applies them: BERT, DistilBERT, RoBERTa, XLM-R,
 * MPNet and ModernBERT alike. Pooling (mean, CLS or last token), the query prefix, the query max length and L2
 * normalisation come from config.json, as pt_dense does in Python; nothing here is specific to one model. Anserini
 * copies the model and its vocabulary file into its encoder cache by name: the names carry the model's content hash,
 * so a new export never reuses a stale cached copy.
 *
 * The model runs in a session of its own rather than Anserini's default one: threads that spin while they wait for
 * work take the CPU from the search that follows each encoding, so spinning is off, and the number of threads comes
 * from -Dptdense.onnx.threads (default: ONNX Runtime's, one per core).
 */

package io.anserini.encoder.dense;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.File;
import java.io.IOException;
import java.net.URISyntaxException;
import java.util.HashMap;
import java.util.Map;

public class PtDenseEncoder extends DenseEncoder {
  public static final String DIR_PROPERTY = "ptdense.onnx.dir";
  public static final String THREADS_PROPERTY = "ptdense.onnx.threads";

  private final JsonNode config;
  private final HuggingFaceTokenizer hfTokenizer;
  private final String prefix;
  private final String pooling;
  private final boolean normalize;
  private final OrtSession model;

  public PtDenseEncoder() throws IOException, OrtException, URISyntaxException {
    super(cachedName(".onnx"), fileUrl("model"), cachedName("-vocab.txt"), fileUrl("vocab"), null);
    this.config = readConfig();
    JsonNode settings = config.get("settings");
    this.prefix = settings.get("query_prefix").asText("");
    this.pooling = settings.get("pooling").asText("mean");
    this.normalize = settings.get("normalize").asBoolean(true);
    if (!"mean".equals(pooling) && !"cls".equals(pooling) && !"last".equals(pooling)) {
      throw new IllegalStateException("unknown pooling '" + pooling + "' in config.json (mean, cls or last)");
    }
    File tokenizerFile = new File(exportDir(), config.path("tokenizer").asText("tokenizer.json"));
    this.hfTokenizer = HuggingFaceTokenizer.builder()
        .optTokenizerPath(tokenizerFile.toPath())
        .optAddSpecialTokens(true)
        .optTruncation(true)
        .optMaxLength(settings.get("query_max_length").asInt())
        .optPadding(false)
        .build();
    OrtSession.SessionOptions options = new OrtSession.SessionOptions();
    options.addConfigEntry("session.intra_op.allow_spinning", "0");
    options.setInterOpNumThreads(1);
    int threads = Integer.getInteger(THREADS_PROPERTY, 0);
    if (threads > 0) {
      options.setIntraOpNumThreads(threads);
    }
    this.model = environment.createSession(new File(exportDir(), config.get("model").asText()).getPath(), options);
    session.close();  // Anserini's session with default options: ours replaces it
  }

  @Override
  public void close() {
    try {
      model.close();
    } catch (OrtException e) {
      throw new IllegalStateException("closing the ONNX session failed", e);
    }
  }

  /** Token ids of prefix + text, with the family's special tokens, truncated to the query max length. */
  public long[] tokenIds(String text) {
    return hfTokenizer.encode(prefix + text).getIds();
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
      if (model.getInputNames().contains("token_type_ids")) {
        inputs.put("token_type_ids", OnnxTensor.createTensor(environment, new long[1][ids.length]));
      }
      try (OrtSession.Result result = model.run(inputs)) {
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
    if ("cls".equals(pooling)) {
      System.arraycopy(hidden[0], 0, pooled, 0, dim);
    } else if ("last".equals(pooling)) {
      System.arraycopy(hidden[hidden.length - 1], 0, pooled, 0, dim);
    } else {
      for (float[] token : hidden) {
        for (int j = 0; j < dim; j++) {
          pooled[j] += token[j];
        }
      }
      for (int j = 0; j < dim; j++) {
        pooled[j] /= hidden.length;
      }
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
