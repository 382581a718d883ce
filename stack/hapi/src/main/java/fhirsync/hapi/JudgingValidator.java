package fhirsync.hapi;

import ca.uhn.fhir.rest.api.server.RequestDetails;
import ca.uhn.fhir.rest.server.interceptor.RequestValidatingInterceptor;
import ca.uhn.fhir.validation.ResultSeverityEnum;
import ca.uhn.fhir.validation.SingleValidationMessage;
import ca.uhn.fhir.validation.ValidationResult;
import jakarta.servlet.http.HttpServlet;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;

import java.io.IOException;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.atomic.AtomicLong;

/**
 * HAPI's RequestValidatingInterceptor (HL7's validator; an ERROR rejects the request with 422) that
 * also tallies every issue it raises, by severity, message id and element path (indices and resource ids
 * removed), so
 * the tests can read what the validator said about everything the connector wrote:
 * GET /validation-report answers the tally as JSON, DELETE /validation-report clears it.
 */
public class JudgingValidator extends RequestValidatingInterceptor {
	private static final Map<String, long[]> TALLY = new TreeMap<>();
	private static final Map<String, String> EXAMPLE = new TreeMap<>();
	private static final AtomicLong REQUESTS = new AtomicLong();

	@Override
	protected void postProcessResult(RequestDetails theRequestDetails, ValidationResult theResult) {
		record(theResult);
		super.postProcessResult(theRequestDetails, theResult);
	}

	@Override
	protected void postProcessResultOnFailure(RequestDetails theRequestDetails, ValidationResult theResult) {
		record(theResult);
		super.postProcessResultOnFailure(theRequestDetails, theResult);
	}

	private static void record(ValidationResult result) {
		REQUESTS.incrementAndGet();
		synchronized (TALLY) {
			for (SingleValidationMessage m : result.getMessages()) {
				ResultSeverityEnum sev = m.getSeverity();
				// Indices and the validator's /*Type/id*/ markers removed: one line per kind of issue, no ids.
				String path = m.getLocationString() == null ? "" : m.getLocationString().replaceAll("\\[\\d+\\]", "[]").replaceAll("/\\*[^*]*\\*/", "");
				String key = sev.getCode() + "\t" + m.getMessageId() + "\t" + path;
				TALLY.computeIfAbsent(key, k -> new long[1])[0]++;
				EXAMPLE.putIfAbsent(key, m.getMessage());
			}
		}
	}

	/** The tally as JSON: { requests, issues: [{severity, messageId, path, count, example}] }. */
	public static class ReportServlet extends HttpServlet {
		@Override
		protected void doGet(HttpServletRequest req, HttpServletResponse resp) throws IOException {
			StringBuilder b = new StringBuilder();
			b.append("{\"requests\":").append(REQUESTS.get()).append(",\"issues\":[");
			synchronized (TALLY) {
				boolean first = true;
				for (Map.Entry<String, long[]> e : TALLY.entrySet()) {
					String[] k = e.getKey().split("\t", -1);
					if (!first) b.append(',');
					first = false;
					b.append("{\"severity\":").append(json(k[0]))
							.append(",\"messageId\":").append(json(k[1]))
							.append(",\"path\":").append(json(k[2]))
							.append(",\"count\":").append(e.getValue()[0])
							.append(",\"example\":").append(json(EXAMPLE.get(e.getKey())))
							.append('}');
				}
			}
			b.append("]}");
			resp.setContentType("application/json");
			resp.setCharacterEncoding("UTF-8");
			resp.getWriter().write(b.toString());
		}

		@Override
		protected void doDelete(HttpServletRequest req, HttpServletResponse resp) {
			synchronized (TALLY) {
				TALLY.clear();
				EXAMPLE.clear();
				REQUESTS.set(0);
			}
			resp.setStatus(204);
		}
	}

	static String json(String s) {
		if (s == null) return "null";
		StringBuilder b = new StringBuilder("\"");
		for (char c : s.toCharArray()) {
			switch (c) {
				case '"' -> b.append("\\\"");
				case '\\' -> b.append("\\\\");
				case '\n' -> b.append("\\n");
				case '\r' -> b.append("\\r");
				case '\t' -> b.append("\\t");
				default -> {
					if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
					else b.append(c);
				}
			}
		}
		return b.append('"').toString();
	}
}
