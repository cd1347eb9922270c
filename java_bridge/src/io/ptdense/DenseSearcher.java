/*
 * pt_dense Java bridge: dense search of a Lucene index written by Anserini (HNSW or flat), queries encoded by
 * PtDenseEncoder, with nothing between them that a single query does not need.
 *
 * Anserini's own searchers sort every result list by score and then by docid string (a doc-values sort), load each
 * hit's whole stored document, and build one ScoredDoc object per hit. This searcher asks Lucene for the top k by
 * score, reads the docids from the "id" binary doc values in docid order (one forward pass per segment; the stored
 * field when a segment has no doc values), and returns the hits as two strings (see Hits). Each Hits also carries the
 * time its parts took inside Java (encoding, the vector search, the docid lookup), so a caller sees where a query's
 * time went without timing the parts separately.
 */

package io.ptdense;

import io.anserini.encoder.dense.PtDenseEncoder;

import org.apache.lucene.index.BinaryDocValues;
import org.apache.lucene.index.DirectoryReader;
import org.apache.lucene.index.IndexReader;
import org.apache.lucene.index.LeafReaderContext;
import org.apache.lucene.index.ReaderUtil;
import org.apache.lucene.index.StoredFields;
import org.apache.lucene.search.IndexSearcher;
import org.apache.lucene.search.KnnFloatVectorQuery;
import org.apache.lucene.search.ScoreDoc;
import org.apache.lucene.search.TopDocs;
import org.apache.lucene.store.FSDirectory;

import java.io.IOException;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

public final class DenseSearcher implements AutoCloseable {
  /** The fields Anserini's DenseVectorDocumentGenerator writes. */
  public static final String VECTOR_FIELD = "vector";
  public static final String ID_FIELD = "id";
  private static final Set<String> ID_ONLY = Set.of(ID_FIELD);

  private final IndexReader reader;
  private final IndexSearcher searcher;
  private final PtDenseEncoder encoder;
  private final int efSearch;

  /**
   * Opens the Lucene index in {@code indexDir}; queries are encoded by the export that the system property
   * {@code ptdense.onnx.dir} names. {@code efSearch} is HNSW's candidate list (at least k is used).
   */
  public DenseSearcher(String indexDir, int efSearch) throws Exception {
    this.reader = DirectoryReader.open(FSDirectory.open(Paths.get(indexDir)));
    this.searcher = new IndexSearcher(reader);
    this.encoder = new PtDenseEncoder();
    this.efSearch = efSearch;
  }

  /** The top {@code k} hits of {@code query}, encoded here. */
  public Hits search(String query, int k) throws Exception {
    long started = System.nanoTime();
    float[] vector = encoder.encode(query);
    long encoded = System.nanoTime();
    Hits hits = search(vector, k);
    hits.encodeMillis = (encoded - started) / 1e6;
    return hits;
  }

  /** The top {@code k} hits of an encoded query vector. */
  public Hits search(float[] vector, int k) throws IOException {
    long started = System.nanoTime();
    TopDocs top = searcher.search(new KnnFloatVectorQuery(VECTOR_FIELD, vector, Math.max(k, efSearch)), k);
    long searched = System.nanoTime();
    ScoreDoc[] found = top.scoreDocs;
    String[] ids = docids(found);
    float[] scores = new float[found.length];
    for (int i = 0; i < found.length; i++) {
      scores[i] = found[i].score;
    }
    Hits hits = new Hits(ids, scores);
    hits.searchMillis = (searched - started) / 1e6;
    hits.lookupMillis = (System.nanoTime() - searched) / 1e6;
    return hits;
  }

  /** Many queries on {@code threads} threads; their hits in input order. */
  public Hits[] batch(List<String> queries, int k, int threads) throws Exception {
    if (threads <= 1 || queries.size() <= 1) {
      Hits[] out = new Hits[queries.size()];
      for (int i = 0; i < out.length; i++) {
        out[i] = search(queries.get(i), k);
      }
      return out;
    }
    ExecutorService pool = Executors.newFixedThreadPool(threads);
    try {
      List<Future<Hits>> pending = new ArrayList<>(queries.size());
      for (String query : queries) {
        pending.add(pool.submit(() -> search(query, k)));
      }
      Hits[] out = new Hits[pending.size()];
      for (int i = 0; i < out.length; i++) {
        out[i] = pending.get(i).get();
      }
      return out;
    } catch (ExecutionException e) {
      throw e.getCause() instanceof Exception ? (Exception) e.getCause() : e;
    } finally {
      pool.shutdownNow();
    }
  }

  /** The encoder, to encode without searching (parity checks, timing). */
  public PtDenseEncoder encoder() {
    return encoder;
  }

  /** Each hit's docid: doc values visited in increasing Lucene docid order, the stored field as a fallback. */
  private String[] docids(ScoreDoc[] hits) throws IOException {
    String[] ids = new String[hits.length];
    Integer[] order = new Integer[hits.length];
    for (int i = 0; i < order.length; i++) {
      order[i] = i;
    }
    Arrays.sort(order, (a, b) -> Integer.compare(hits[a].doc, hits[b].doc));
    List<LeafReaderContext> leaves = reader.leaves();
    LeafReaderContext leaf = null;
    BinaryDocValues values = null;
    StoredFields stored = null;
    for (int i : order) {
      int doc = hits[i].doc;
      if (leaf == null || doc >= leaf.docBase + leaf.reader().maxDoc()) {
        leaf = leaves.get(ReaderUtil.subIndex(doc, leaves));
        values = leaf.reader().getBinaryDocValues(ID_FIELD);
      }
      if (values != null && values.advanceExact(doc - leaf.docBase)) {
        ids[i] = values.binaryValue().utf8ToString();
      } else {
        if (stored == null) {
          stored = searcher.storedFields();
        }
        ids[i] = stored.document(doc, ID_ONLY).get(ID_FIELD);
      }
    }
    return ids;
  }

  @Override
  public void close() throws IOException {
    encoder.close();
    reader.close();
  }
}
