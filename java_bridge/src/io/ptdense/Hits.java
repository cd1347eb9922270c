/*
 * pt_dense Java bridge: one dense search's hits as two strings, so that Python reads k hits with one call across the
 * JNI boundary instead of 2k (pyjnius wraps every object of an array in a Python proxy, and every field read is
 * another call: at k=1000 that costs more than the search itself). Also where the search's time went, in Java.
 */

package io.ptdense;

public final class Hits {
  /**
   * The docids, best first, each followed by '\n' (no pt_dense docno holds one). Split on '\n' alone: a docid may
   * hold any other character, line separators such as form feed, U+0085 and U+2028 included.
   */
  public final String docids;
  /** The scores as Lucene gives them, space-separated, in the order of the docids. */
  public final String scores;
  /** Hits found (at most k). */
  public final int count;
  /** Milliseconds spent encoding the query (0 when a vector was given), searching, and looking up docids. */
  public double encodeMillis;
  public double searchMillis;
  public double lookupMillis;

  Hits(String[] ids, float[] values) {
    StringBuilder idText = new StringBuilder(ids.length * 12);
    StringBuilder valueText = new StringBuilder(ids.length * 12);
    for (int i = 0; i < ids.length; i++) {
      idText.append(ids[i]).append('\n');
      valueText.append(values[i]).append(' ');
    }
    this.docids = idText.toString();
    this.scores = valueText.toString();
    this.count = ids.length;
  }
}
