/*
 * pt_dense Java bridge: one dense search's hits as two strings, so that Python reads k hits with one call across the
 * JNI boundary instead of 2k (pyjnius wraps every ScoredDoc of a ScoredDoc[] in a Python proxy, and every field read
 * is another call: at k=1000 that costs more than the search itself).
 */

package io.ptdense;

import io.anserini.search.FlatDenseSearcher;
import io.anserini.search.HnswDenseSearcher;
import io.anserini.search.ScoredDoc;

import java.io.IOException;
import java.util.List;
import java.util.SortedMap;

public final class Hits {
  /** The docids, one per line, best first. */
  public final String docids;
  /** The scores as Lucene gives them, space-separated, in the order of the docids. */
  public final String scores;
  /** Hits found (at most k). */
  public final int count;

  private Hits(ScoredDoc[] hits) {
    StringBuilder ids = new StringBuilder(hits.length * 12);
    StringBuilder values = new StringBuilder(hits.length * 12);
    for (ScoredDoc hit : hits) {
      ids.append(hit.docid).append('\n');
      values.append(hit.score).append(' ');
    }
    this.docids = ids.toString();
    this.scores = values.toString();
    this.count = hits.length;
  }

  /** Encode {@code query} with the searcher's encoder and return its top {@code k} hits. */
  public static Hits search(HnswDenseSearcher searcher, String query, int k) throws IOException {
    return new Hits(searcher.search(query, k));
  }

  public static Hits search(FlatDenseSearcher searcher, String query, int k) throws IOException {
    return new Hits(searcher.search(query, k));
  }

  /** Many queries on {@code threads} threads: their hits in the order of {@code qids} (distinct keys). */
  public static Hits[] batch(HnswDenseSearcher searcher, List<String> queries, List<String> qids, int k,
      int threads) {
    return inOrder(searcher.batch_search(queries, qids, k, threads), qids);
  }

  public static Hits[] batch(FlatDenseSearcher searcher, List<String> queries, List<String> qids, int k,
      int threads) {
    return inOrder(searcher.batch_search(queries, qids, k, threads), qids);
  }

  private static Hits[] inOrder(SortedMap<String, ScoredDoc[]> found, List<String> qids) {
    Hits[] out = new Hits[qids.size()];
    for (int i = 0; i < out.length; i++) {
      ScoredDoc[] hits = found.get(qids.get(i));
      out[i] = new Hits(hits == null ? new ScoredDoc[0] : hits);
    }
    return out;
  }

  /** The top {@code k} hits of an already encoded query vector (for timing the search alone). */
  public static Hits search(HnswDenseSearcher searcher, float[] vector, int k) throws IOException {
    return new Hits(searcher.search(vector, k));
  }
}
