package ai.segserve.plugins;

import java.io.IOException;
import java.io.OutputStream;
import java.net.URI;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Locale;
import java.util.Map;
import org.pytorch.serve.servingsdk.Context;
import org.pytorch.serve.servingsdk.annotations.Endpoint;
import org.pytorch.serve.servingsdk.annotations.helpers.EndpointTypes;
import org.pytorch.serve.servingsdk.http.Request;
import org.pytorch.serve.servingsdk.http.Response;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@code GET /ui/...}: the web UI's static files (the repo's {@code web/} folder), on the inference port, so the page
 * and {@code /invocations} share one origin and the browser needs no CORS.
 *
 * <p>Off unless {@code SEGSERVE_UI_DIR} names a folder ({@code make serve} sets it; the SageMaker container does not,
 * and answers 404). Only regular files inside that folder with a known extension are served: no listing, no dot
 * files, no {@code ..}, no symlink out of the folder. Responses carry a Content-Security-Policy that lets the page
 * load nothing but its own files (it may still call another endpoint URL the user configures). TorchServe itself
 * marks every plugin response no-cache, so a new version of the UI is seen at the next reload.
 */
@Endpoint(
        urlPattern = "ui",
        endpointType = EndpointTypes.INFERENCE,
        description = "The web UI's static files from SEGSERVE_UI_DIR (404 when unset)")
public final class UiEndpoint extends JsonGetEndpoint {

    static final String ENV_VAR = "SEGSERVE_UI_DIR";
    private static final String PREFIX = "/ui/";
    private static final long MAX_FILE_BYTES = 4L * 1024 * 1024;

    // connect-src stays open to http(s): the endpoint URL is the user's choice (e.g. an API Gateway URL), and so
    // is an image URL the page tries to read directly. Scripts, styles and fonts come only from this origin.
    static final String CONTENT_SECURITY_POLICY = "default-src 'self'; script-src 'self'; style-src 'self'; "
            + "img-src 'self' data: blob: http: https:; connect-src 'self' http: https:; object-src 'none'; "
            + "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

    private static final Map<String, String> CONTENT_TYPES = Map.of(
            "html", "text/html; charset=utf-8",
            "js", "text/javascript; charset=utf-8",
            "css", "text/css; charset=utf-8",
            "svg", "image/svg+xml",
            "png", "image/png",
            "ico", "image/x-icon",
            "json", "application/json");

    private static final Logger LOG = LoggerFactory.getLogger(UiEndpoint.class);

    @Override
    public void doGet(Request request, Response response, Context context) throws IOException {
        String configured = System.getenv(ENV_VAR);
        if (configured == null || configured.trim().isEmpty()) {
            sendJson(response, 404, "{\"error\": \"the web UI is not served by this endpoint (" + ENV_VAR
                    + " is not set)\"}");
            return;
        }
        String path = decodedPath(request.getRequestURI());
        if (path == null) {
            notFound(response);
            return;
        }
        if (path.equals("/ui")) {
            // Relative links in index.html need the trailing slash.
            response.setStatus(301);
            response.setHeader("Location", PREFIX);
            return;
        }
        String relative = path.substring(PREFIX.length());
        if (relative.isEmpty()) {
            relative = "index.html";
        }
        Path file = resolve(configured.trim(), relative);
        if (file == null) {
            notFound(response);
            return;
        }
        byte[] body = Files.readAllBytes(file);
        response.setStatus(200);
        response.setContentType(CONTENT_TYPES.get(extension(relative)));
        response.setHeader("X-Content-Type-Options", "nosniff");
        response.setHeader("Content-Security-Policy", CONTENT_SECURITY_POLICY);
        response.setHeader("Referrer-Policy", "no-referrer");
        OutputStream out = response.getOutputStream();
        out.write(body);
        out.flush();
    }

    /** The percent-decoded path of a request URI under /ui; null for anything else or anything malformed. */
    static String decodedPath(String uri) {
        try {
            String path = new URI(uri).getPath();
            if (path == null || !(path.equals("/ui") || path.startsWith(PREFIX))) {
                return null;
            }
            return path;
        } catch (URISyntaxException e) {
            return null;
        }
    }

    /**
     * The file {@code relative} names inside {@code root}, or null: each segment must be a plain name (no empty, dot
     * or backslash segment, no NUL), the extension known, and the real path (symlinks resolved) a regular file
     * inside the real root, of at most MAX_FILE_BYTES.
     */
    static Path resolve(String root, String relative) {
        if (!CONTENT_TYPES.containsKey(extension(relative))) {
            return null;
        }
        for (String segment : relative.split("/", -1)) {
            if (segment.isEmpty() || segment.startsWith(".") || segment.indexOf('\\') >= 0
                    || segment.indexOf('\0') >= 0) {
                return null;
            }
        }
        try {
            Path realRoot = Paths.get(root).toRealPath();
            Path real = realRoot.resolve(relative).toRealPath();  // a missing file throws
            if (!real.startsWith(realRoot) || !Files.isRegularFile(real) || Files.size(real) > MAX_FILE_BYTES) {
                return null;
            }
            return real;
        } catch (IOException | InvalidPathException | SecurityException e) {
            LOG.debug("UI file {} not served: {}", relative, e.toString());
            return null;
        }
    }

    private static String extension(String name) {
        int dot = name.lastIndexOf('.');
        return dot < 0 ? "" : name.substring(dot + 1).toLowerCase(Locale.ROOT);
    }

    private static void notFound(Response response) throws IOException {
        sendJson(response, 404, "{\"error\": \"no such file in the web UI\"}");
    }
}
