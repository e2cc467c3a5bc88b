// One HTTP GET through HttpURLConnection with a 1 s connect timeout and a 1 s read timeout
// (the read timeout is the socket's SO_TIMEOUT, setSoTimeout(1000) underneath), reported as
// one line, so a test can tell apart a client that got its answer, one whose own timeout
// fired and one whose response was cut short. Run as a single source file: `java Client.java
// URL [--repeat N]`. Times are taken inside the program, after the HTTP classes are loaded,
// so the JVM's start-up is not measured.
//
// Single request: client=java outcome=ok|timeout|error kind=K status=S bytes=B elapsed=E
//   kind: none, SocketTimeoutException, short (the body ended before its Content-Length), or
//   the exception's class name.
// --repeat N: one warm-up request, then N more (HttpURLConnection keeps the connection alive
//   when a body is read to its end), each timed:
//   client=java outcome=ok requests=N median=S min=S max=S
// Exit status 0 whenever the line was printed.
import java.io.IOException;
import java.io.InputStream;
import java.net.HttpURLConnection;
import java.net.SocketTimeoutException;
import java.net.URL;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

public class Client {
  static final int TIMEOUT_MS = 1000;

  // The outcome of one request: failure is null when it succeeded.
  record Result(String failure, String kind, int status, long bytes) {}

  static Result get(URL url) {
    long bytes = 0;
    try {
      HttpURLConnection c = (HttpURLConnection) url.openConnection();
      c.setConnectTimeout(TIMEOUT_MS);
      c.setReadTimeout(TIMEOUT_MS);
      int status = c.getResponseCode();
      byte[] buf = new byte[65536];
      try (InputStream in = c.getInputStream()) {
        for (int n; (n = in.read(buf)) >= 0; ) bytes += n;
      }
      // HttpURLConnection itself reports a body cut short of its Content-Length as a normal
      // end; a careful program checks, and so does this one.
      long expected = c.getContentLengthLong();
      if (expected >= 0 && bytes < expected) return new Result("error", "short", status, bytes);
      return new Result(null, "none", status, bytes);
    } catch (SocketTimeoutException e) {
      return new Result("timeout", "SocketTimeoutException", 0, bytes);
    } catch (IOException e) {
      return new Result("error", e.getClass().getSimpleName(), 0, bytes);
    }
  }

  static String line(Result r, double elapsed) {
    return String.format("client=java outcome=%s kind=%s status=%d bytes=%d elapsed=%.3f",
                         r.failure() == null ? "ok" : r.failure(), r.kind(), r.status(),
                         r.bytes(), elapsed);
  }

  public static void main(String[] args) throws Exception {
    if (args.length != 1 && !(args.length == 3 && args[1].equals("--repeat"))) {
      System.err.println("usage: java Client.java URL [--repeat N]");
      System.exit(2);
    }
    URL url = new URL(args[0]);
    int repeat = args.length == 3 ? Integer.parseInt(args[2]) : 0;
    // Load the classes a request needs before the clock starts.
    Class.forName("sun.net.www.protocol.http.HttpURLConnection");
    Class.forName("java.net.SocketTimeoutException");

    long start = System.nanoTime();
    Result first = get(url);
    double elapsed = (System.nanoTime() - start) / 1e9;
    if (first.failure() != null || repeat <= 0) {
      System.out.println(line(first, elapsed));
      return;
    }
    List<Double> times = new ArrayList<>();
    for (int i = 0; i < repeat; i++) {
      long t0 = System.nanoTime();
      Result r = get(url);
      double t = (System.nanoTime() - t0) / 1e9;
      if (r.failure() != null) {
        System.out.println(line(r, t));
        return;
      }
      times.add(t);
    }
    Collections.sort(times);
    int n = times.size();
    double median = n % 2 == 1 ? times.get(n / 2) : (times.get(n / 2 - 1) + times.get(n / 2)) / 2;
    System.out.println(String.format("client=java outcome=ok requests=%d median=%.4f min=%.4f max=%.4f",
                                     n, median, times.get(0), times.get(n - 1)));
  }
}
